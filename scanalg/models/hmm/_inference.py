r"""Hidden Markov model inference, dynamax-compatible, on any scan method.

The model: $z_1 \sim \pi$, $z_{t+1} \mid z_t \sim A_t[z_t, \cdot]$, and observations
entering only through log-likelihoods $\ell_t[k] = \log p(y_t \mid z_t = k)$.
The transition matrix is fixed, shape `(K, K)`, or time-varying, shape
`(T-1, K, K)` with `transition_matrix[t]` moving from step $t$ to $t+1$.

Every function here builds scan elements, calls `scanalg.scan`, and reads the
results out; `method=` is passed to the scan, so all methods return the same answer
(up to rounding; samples and Viterbi paths are integer and identical).

**Ragged batches.** Every function takes `lengths=`: then `log_likelihoods` holds
$B$ sequences of lengths $T_1, \dots, T_B$ concatenated along time ($N = \sum_b T_b$
steps; a time-varying `transition_matrix` is packed the same way, `(N-1, K, K)`, its
entries at the last step of each sequence unused), and every sequence gets exactly its
own answer from one scan per pass (`scanalg._segments.Segments`). Each pass is written
once, over packed sequences: a single sequence is the batch of one.

**Numerics.** Filtered probabilities are normalised at every step; products of many
steps (parallel and blocked methods) keep a log-scale per row (see
`scanalg.hmm.HMMForward`), so no product underflows; the smoother carries
probabilities back through Markov kernels (`scanalg.hmm.HMMBackward`), whose
entries never leave $[0, 1]$. Nothing is clamped: structural zeros in the matrices
and $-\infty$ log-likelihoods are exact. The marginal log-likelihood is the
accurate sum of the per-step log-normalisers $\log p(y_t \mid y_{1:t-1})$ (a tree,
or a double-word segmented scan), accurate in float32 for very long sequences.

*Dynamic range.* Probabilities are stored as numbers, not logarithms (that is what
makes the sequential filter cost one matrix-vector product per step). A state whose
probability relative to the most likely one falls below the dtype's range (about
$e^{-708}$ in float64, $e^{-87}$ in float32) is stored as zero; if later
observations favour it by that much again (log-likelihood differences of hundreds of
nats that contradict the model), the result is finite but no longer exact. Samples
never contain a transition of prior probability zero. Viterbi works in log space
and is not affected.

**Impossible observations.** If at some step $s$ every state has probability zero,
`marginal_loglik` is $-\infty$. Filtered and predicted probabilities are the usual
ones before $s$; the predicted probabilities at $s$ are the usual ones too; the
filtered probabilities at $s$ and all probabilities after $s$ are zero vectors.
Smoothed and transition probabilities (conditioned on an impossible event) are zero
everywhere. Posterior samples and Viterbi paths are still valid state indices, but
carry no meaning. Nothing is NaN. In a ragged batch all this holds for the sequence
concerned alone.
"""

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, Scalar

from ..._methods import AbstractScanMethod, as_method
from ..._numerics import (
    finite_or_zero,
    inverse_cdf,
    inverse_cdf_rows,
    safe_log,
    straight_through_one,
)
from ..._scan import scan
from ..._segments import Segments, checking_lengths
from ..._validate import distribution_problem, float_dtype, positive_count
from ...monoids import FiniteFunction
from ._monoids import (
    Evidence,
    HMMBackward,
    HMMForward,
    LogMatrix,
    MaxPlus,
    ScaledMatrix,
    filter_readout,
)

_Transitions = (
    Float[ArrayLike, "num_states num_states"]
    | Float[ArrayLike, "num_timesteps_minus_1 num_states num_states"]
)
_Lengths = Int[ArrayLike, " num_sequences"] | Sequence[int] | None


# --------------------------------------------------------------------------------------
# Results.
# --------------------------------------------------------------------------------------


class HMMPosteriorFiltered(NamedTuple):
    r"""The filtering posterior of an HMM (as in dynamax).

    **Fields:**

    - `marginal_loglik`: $\log p(y_{1:T})$.
    - `filtered_probs`: $p(z_t \mid y_{1:t})$, shape `(T, K)`.
    - `predicted_probs`: $p(z_t \mid y_{1:t-1})$, shape `(T, K)` (row 0 is $\pi$).
    """

    marginal_loglik: Scalar
    filtered_probs: Float[Array, "num_timesteps num_states"]
    predicted_probs: Float[Array, "num_timesteps num_states"]


class HMMPosterior(NamedTuple):
    r"""The smoothing posterior of an HMM (as in dynamax).

    **Fields:**

    - `marginal_loglik`, `filtered_probs`, `predicted_probs`: as in
      `HMMPosteriorFiltered`.
    - `smoothed_probs`: $p(z_t \mid y_{1:T})$, shape `(T, K)`.
    - `initial_probs`: $p(z_1 \mid y_{1:T})$, shape `(K,)`.
    - `trans_probs`: $p(z_t = i, z_{t+1} = j \mid y_{1:T})$: shape `(T-1, K, K)` for a
      time-varying transition matrix, summed over $t$ to `(K, K)` (expected transition
      counts) for a fixed one.
    """

    marginal_loglik: Scalar
    filtered_probs: Float[Array, "num_timesteps num_states"]
    predicted_probs: Float[Array, "num_timesteps num_states"]
    smoothed_probs: Float[Array, "num_timesteps num_states"]
    initial_probs: Float[Array, " num_states"]
    trans_probs: (
        Float[Array, "num_states num_states"]
        | Float[Array, "num_timesteps_minus_1 num_states num_states"]
        | None
    ) = None


class RaggedHMMPosteriorFiltered(NamedTuple):
    r"""The filtering posterior of a packed batch of $B$ sequences (`lengths=`).

    **Fields:**

    - `marginal_loglik`: $\log p(y^{(b)})$ of each sequence, shape `(B,)`.
    - `filtered_probs`: $p(z_t \mid y_{\text{start}:t})$, packed, shape `(N, K)`.
    - `predicted_probs`: $p(z_t \mid y_{\text{start}:t-1})$, packed, shape `(N, K)`
      ($\pi$ at the start of every sequence).
    """

    marginal_loglik: Float[Array, " num_sequences"]
    filtered_probs: Float[Array, "num_timesteps num_states"]
    predicted_probs: Float[Array, "num_timesteps num_states"]


class RaggedHMMPosterior(NamedTuple):
    r"""The smoothing posterior of a packed batch of $B$ sequences (`lengths=`).

    **Fields:**

    - `marginal_loglik`, `filtered_probs`, `predicted_probs`: as in
      `RaggedHMMPosteriorFiltered`.
    - `smoothed_probs`: $p(z_t \mid y^{(b)})$, packed, shape `(N, K)`.
    - `initial_probs`: $p(z_1 \mid y^{(b)})$ of each sequence, shape `(B, K)`.
    - `trans_probs`: for a fixed transition matrix, the expected transition counts of
      each sequence, shape `(B, K, K)`; for a time-varying one (shape `(N-1, K, K)`),
      $p(z_t = i, z_{t+1} = j \mid y^{(b)})$ packed, shape `(N-1, K, K)`, zero at the
      steps that cross from one sequence to the next.
    """

    marginal_loglik: Float[Array, " num_sequences"]
    filtered_probs: Float[Array, "num_timesteps num_states"]
    predicted_probs: Float[Array, "num_timesteps num_states"]
    smoothed_probs: Float[Array, "num_timesteps num_states"]
    initial_probs: Float[Array, "num_sequences num_states"]
    trans_probs: (
        Float[Array, "num_sequences num_states num_states"]
        | Float[Array, "num_timesteps_minus_1 num_states num_states"]
    )


# --------------------------------------------------------------------------------------
# The model, validated.
# --------------------------------------------------------------------------------------


class _Model(NamedTuple):
    pi: Array  # (K,)
    a: Array  # (K, K) or (N-1, K, K)
    ll: Array  # (N, K)
    segs: Segments

    @property
    def time_varying(self) -> bool:
        return self.a.ndim == 3

    @property
    def num_states(self) -> int:
        return self.ll.shape[1]


def _check_arguments(args: dict[str, Any]) -> None:
    """`ValueError` at trace time for arrays of the wrong shapes, naming the argument
    (before any runtime type checker sees them); `num_samples` made a Python `int`
    (before `jit` would trace a NumPy integer)."""
    if args.get("num_samples") is not None:
        args["num_samples"] = positive_count(args["num_samples"], "num_samples")
    pi, a, ll = (jnp.shape(args[name]) for name in _ARRAYS)
    if len(ll) != 2 or ll[0] < 1:
        raise ValueError(
            "`log_likelihoods` must have shape (T, K) = (num_timesteps, num_states) with "
            f"T >= 1; got shape {ll}."
        )
    t, k = ll
    if pi != (k,):
        raise ValueError(
            f"`initial_probs` must have shape (K,) = ({k},) to match `log_likelihoods` of "
            f"shape {ll}; got shape {pi}."
        )
    if len(a) == 3:
        if a != (t - 1, k, k):
            raise ValueError(
                f"A time-varying `transition_matrix` must have shape (T-1, K, K) = "
                f"({t - 1}, {k}, {k}) for `log_likelihoods` of shape {ll}; got shape {a}."
            )
    elif a != (k, k):
        raise ValueError(
            f"`transition_matrix` must have shape (K, K) = ({k}, {k}) or (T-1, K, K) = "
            f"({t - 1}, {k}, {k}); got shape {a}."
        )


_ARRAYS = ("initial_probs", "transition_matrix", "log_likelihoods")


def _model(initial_probs, transition_matrix, log_likelihoods, lengths) -> _Model:
    """Check values (with `error_if`; the shapes are checked before tracing by
    `_check_arguments`) and cast to one dtype."""
    pi = jnp.asarray(initial_probs)
    a = jnp.asarray(transition_matrix)
    ll = jnp.asarray(log_likelihoods)
    dtype = float_dtype(pi, a, ll)
    pi, a, ll = pi.astype(dtype), a.astype(dtype), ll.astype(dtype)
    # One `error_if` per argument, all tied to `pi` (used by every pass; a value
    # passed through a check's `lax.cond` may be copied, and `pi` is small).
    rule = "(nonnegative, no NaN, summing to one along the last axis)"
    checks = [
        (distribution_problem(pi), f"`initial_probs` must be a probability vector {rule}."),
        (
            distribution_problem(a),
            f"Every row of `transition_matrix` must be a probability vector {rule}.",
        ),
        (jnp.any(jnp.isnan(ll) | (ll == jnp.inf)), "`log_likelihoods` contains NaN or +inf."),
    ]
    for bad, message in checks:
        pi = eqx.error_if(pi, bad, message)
    return _Model(pi, a, ll, Segments(lengths, ll.shape[0]))


# --------------------------------------------------------------------------------------
# The passes, each written once over packed sequences.
# --------------------------------------------------------------------------------------


class _Filtered(NamedTuple):
    loglik: Array  # (B,)
    filtered: Array  # (N, K)
    predicted: Array  # (N, K)


def _moves(model: _Model, lik):
    """The forward monoid and its $N - 1$ inputs (move $t$: condition on step $t$, then
    go to $t + 1$), from per-step log-likelihoods `lik` (an array or `Evidence`)."""
    first = jax.tree.map(lambda x: x[:-1], lik)
    if model.time_varying:
        return HMMForward(), ScaledMatrix(model.a, first)
    return HMMForward(model.a), first


def _dense(model: _Model) -> Array:
    """Whether every transition probability that is used is far from zero: then every
    prediction after a sequence's first step has full support (see `_forward`)."""
    a = model.a
    flags = model.segs.end_flags()
    if model.time_varying and flags is not None:  # (the moves out of a sequence are unused)
        a = jnp.where(flags[:, None, None], 1, a)
    info = jnp.finfo(a.dtype)
    return jax.lax.stop_gradient(jnp.min(a, initial=1) > info.tiny / info.eps)


def _forward(model: _Model, method) -> _Filtered:
    r"""Forward filter: per-sequence log-likelihoods, filtered and predicted probabilities.

    One forward scan with initial state $\pi$, restarted at every sequence's first step:
    the state before step $t$ is the prediction $p_t = p(z_t \mid y_{\text{start}:t-1})$.
    The loop stores only the predictions; the filtered $f_t$ and the log-normalisers
    $m_t + \log(q_t \cdot A_t\mathbf{1})$, $q_t = p_t \odot e^{\ell_t - m_t}$, are read
    out of all of them at once afterwards (`filter_readout` under `vmap`: every extra
    kernel in the loop body costs more than the whole vectorised pass).
    $A_t\mathbf{1} = \mathbf{1}$ for a stochastic matrix; keeping the moved mass makes
    the log-likelihood the exact path sum for any nonnegative input, so its gradient is
    the path sum's. The last step of each sequence moves nothing (its row sums are taken
    as ones). The per-sequence sums of the log-normalisers are accurate
    (`Segments.sum`).

    Inside the loop, when every used $A_t$ has no zero entries (above the dtype's
    smallest normal number over its epsilon), every prediction after a sequence's first
    step has full support, and the shift can be the largest $\ell_t$ over all states
    (over the support of $\pi$ at a first step), with the exponentials computed before
    the loop (`Evidence`): the fast path. Otherwise the shift is the largest $\ell_t$ on
    the support of $p_t$, found in the loop (exact for structural zeros). The choice is
    a `lax.cond` around the loop alone (under `vmap` over the matrices, both run), made
    only for methods that do not combine elements when scanning with an initial state
    (the sequential method): the others spend their time in `combine`, where the two
    paths do the same work, and compile once instead of twice. The readout always uses
    the support shift $m_t$ (exact in both cases).
    """
    pi, a, ll, segs = model.pi, model.a, model.ll, model.segs
    monoid, moves = _moves(model, ll)
    resolved = as_method(method).resolve(monoid, moves, pi)

    def predictions(fast: bool):
        if fast:  # at a sequence's first step the state is pi: shift over its support
            support = jnp.where(segs.starts[:, None], pi > 0, True)
            lik = Evidence.of(ll, support)
        else:
            lik = ll
        return segs.scan_forward(*_moves(model, lik), init=pi, method=resolved)

    if not resolved.combines_with_init:
        # (Only the loop inside the `cond`: the branch then writes the predictions
        # straight into the output, and the exponentials are a temporary of the fast
        # branch alone; around the readout too, the `cond` doubled the peak memory.)
        predicted = jax.lax.cond(
            _dense(model), lambda: predictions(True), lambda: predictions(False)
        )
    else:  # (parallel and blocked scans spend their time in `combine`: one branch
        # halves their compile time)
        predicted = predictions(False)
    # The mass that moves on from each step: the row sums of its matrix, and ones at the
    # last step of every sequence.
    row_sums = straight_through_one(jnp.sum(a, axis=-1))
    if model.time_varying:
        row_sums = jnp.concatenate([row_sums, jnp.ones_like(pi)[None]])
    row_sums = jnp.where(segs.ends[:, None], jnp.ones_like(pi), row_sums)
    out = jax.vmap(filter_readout)(predicted, row_sums, ll)
    loglik = segs.sum(out.log_normaliser, method=method)
    return _Filtered(loglik, out.filtered, predicted)


def _kernel_inputs(model: _Model, forward: _Filtered) -> Array:
    """The filtered probabilities the backward passes build their kernels from.

    In a batch, a sequence with an impossible observation has zero vectors from there
    on; its kernels are built from uniform vectors instead (its own results are zero
    anyway), so that no zero vector reaches the other sequences' backward passes
    (products of kernels would carry it across the restarts). A single sequence needs
    no such isolation.
    """
    if model.segs.single:
        return forward.filtered
    impossible = model.segs.per_step(jnp.isneginf(forward.loglik))
    uniform = jnp.full_like(model.pi, 1 / model.num_states)
    return jnp.where(impossible[:, None], uniform, forward.filtered)


def _smoothed(model: _Model, forward: _Filtered, method) -> Array:
    r"""Smoothed marginals by the backward kernels (the RTS form),
    $p(z_t \mid y) = B_t\, p(z_{t+1} \mid y)$, packed `(N, K)`.

    One reverse scan over the $N - 1$ moves, from the last filtered distribution; the
    move out of each sequence's last step is the constant map to that step's filtered
    (= smoothed) distribution, so the scan restarts there by itself.
    """
    segs = model.segs
    f = _kernel_inputs(model, forward)
    restart = segs.end_flags()
    moves = (f[:-1], model.a) if model.time_varying else f[:-1]
    if restart is not None:
        moves = (moves, restart)
    monoid = HMMBackward(None if model.time_varying else model.a, restarts=restart is not None)
    earlier = scan(monoid, moves, init=f[-1], reverse=True, method=method)
    smoothed = jnp.concatenate([earlier, f[-1:]], axis=0)
    impossible = segs.per_step(jnp.isneginf(forward.loglik))
    return jnp.where(impossible[:, None], jnp.zeros_like(smoothed), smoothed)


def _kernel_weights(model: _Model, f: Array) -> tuple[Callable[[int], Array], Array]:
    r"""`(row, total)` for the $N - 1$ moves: `row(i)`, shape `(N-1, K)`, holds
    $f_t[i] A_t[i, j]$ over $j$ (never stored for all $i$ at once) and `total` its sum
    over $i$, $(f_t A_t)_j$ (the columns of the backward kernels, unnormalised)."""
    a, f = model.a, f[:-1]
    if model.time_varying:
        return (lambda i: f[:, i, None] * a[:, i, :]), jnp.einsum("ti,tij->tj", f, a)
    return (lambda i: f[:, i, None] * a[i][None, :]), f @ a


def _trans_probs(model: _Model, forward: _Filtered, smoothed: Array) -> Array:
    r"""$p(z_t = i, z_{t+1} = j \mid y) = B_t[i, j]\, p(z_{t+1} = j \mid y)$: packed
    `(N-1, K, K)` (time-varying; zero across sequences), or summed over each sequence's
    moves, `(B, K, K)` (fixed)."""
    f = _kernel_inputs(model, forward)
    _, total = _kernel_weights(model, f)
    ratio = smoothed[1:] / jnp.where(total > 0, total, 1)
    ratio = model.segs.restart_reverse(ratio, jnp.zeros_like(model.pi))
    if model.time_varying:
        return f[:-1, :, None] * model.a * ratio[:, None, :]
    return model.a[None] * model.segs.outer_sum(f[:-1], ratio)


def _sample(model: _Model, forward: _Filtered, u: Array, method) -> Array:
    """One packed posterior path from uniforms `u` of shape `(N,)`: FFBS by composition."""
    # E_t(j): a draw of z_t given z_{t+1} = j from column j of the backward kernel,
    # weights filtered_t[i] A_t[i, j], column total (filtered_t A_t)_j. A column that
    # is all zero (z_{t+1} = j impossible given y_{1:t}: reached only after an
    # impossible step, or when float underflow made successive filtered distributions
    # disagree) falls back to the prior weights A_t[i, j], so a path always has
    # positive prior probability.
    segs, a, k = model.segs, model.a, model.num_states
    row, total = _kernel_weights(model, forward.filtered)
    dead = total <= 0

    def prior(i):
        return a[:, i, :] if model.time_varying else a[i][None, :]

    def weights(i):
        return jnp.where(dead, prior(i), row(i))

    prior_total = jnp.sum(a, axis=-2)
    table = inverse_cdf_rows(weights, k, jnp.where(dead, prior_total, total), u[:-1])
    # Each sequence's last state is drawn from its last filtered distribution; the move
    # out of it is the constant map to that state.
    lasts = inverse_cdf(forward.filtered[segs.last][:, :, None], u[segs.last])[:, 0]
    table = segs.restart_reverse(table, segs.per_step(lasts)[:-1, None])
    earlier = scan(FiniteFunction(), table, init=lasts[-1], reverse=True, method=method)
    return jnp.concatenate([earlier, lasts[-1:]])


def _mode(model: _Model, method) -> Array:
    """The packed Viterbi path."""
    segs, ll = model.segs, model.ll
    log_a = safe_log(model.a)
    if model.time_varying:
        monoid, moves = MaxPlus(), LogMatrix(log_a, ll[:-1])
    else:
        monoid, moves = MaxPlus(log_a), ll[:-1]
    log_pi = safe_log(model.pi)
    init = log_pi - finite_or_zero(jnp.max(log_pi))
    scores = segs.scan_forward(monoid, moves, init=init, method=method) + ll
    pointers = _best_predecessors(scores[:-1], log_a)
    lasts = jnp.argmax(scores[segs.last], axis=-1).astype(jnp.int32)
    pointers = segs.restart_reverse(pointers, segs.per_step(lasts)[:-1, None])
    earlier = scan(FiniteFunction(), pointers, init=lasts[-1], reverse=True, method=method)
    return jnp.concatenate([earlier, lasts[-1:]])


def _best_predecessors(scores: Array, log_a: Array) -> Array:
    r"""$\psi_t[j] = \arg\max_i \delta_t[i] + \log A_t[i, j]$ (ties to the smallest $i$),
    shape `(N-1, K)`."""
    log_a = log_a if log_a.ndim == 3 else log_a[None]
    return jnp.argmax(scores[:, :, None] + log_a, axis=-2).astype(jnp.int32)


# --------------------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------------------


@checking_lengths("log_likelihoods", _check_arguments)
def hmm_filter(
    initial_probs: Float[ArrayLike, " num_states"],
    transition_matrix: _Transitions,
    log_likelihoods: Float[ArrayLike, "num_timesteps num_states"],
    *,
    lengths: _Lengths = None,
    method: str | AbstractScanMethod = "auto",
) -> HMMPosteriorFiltered | RaggedHMMPosteriorFiltered:
    r"""Forward filtering: $p(z_t \mid y_{1:t})$ and $\log p(y_{1:T})$.

    A forward scan of `scanalg.hmm.HMMForward` with initial state $\pi$: with the
    sequential method it costs one $K$-vector times $K\times K$ matrix per step.

    **Arguments:**

    - `initial_probs`: $\pi = p(z_1)$, shape `(K,)`.
    - `transition_matrix`: $A[i, j] = p(z_{t+1} = j \mid z_t = i)$, shape `(K, K)`,
      or time-varying, shape `(T-1, K, K)`. Its rows, and `initial_probs`, must sum to
      one within $\sqrt{K\epsilon}$ (in their dtype) or $2K\epsilon_{32}$, whichever
      is larger: probabilities normalised in float32 and cast to float64 are accepted.
    - `log_likelihoods`: $\ell_t[k] = \log p(y_t \mid z_t = k)$, shape `(T, K)`;
      $-\infty$ allowed.
    - `lengths`: optional, shape `(B,)`: `log_likelihoods` holds $B$ sequences of
      these lengths concatenated along time (a ragged batch, $\sum_b T_b = T$; a
      time-varying `transition_matrix` is packed the same way, `(T-1, K, K)`, its
      entries at the last step of each sequence unused). Every sequence gets exactly
      its own answer, in one call. Lengths that do not sum to $T$ are a `ValueError`
      naming both numbers.
    - `method`: the scan method (see `scanalg.scan`).

    **Returns:**

    `HMMPosteriorFiltered(marginal_loglik, filtered_probs, predicted_probs)`; with
    `lengths`, `RaggedHMMPosteriorFiltered` (per-sequence `marginal_loglik` of shape
    `(B,)`, packed probabilities).
    """
    model = _model(initial_probs, transition_matrix, log_likelihoods, lengths)
    out = _forward(model, method)
    if model.segs.single:
        return HMMPosteriorFiltered(out.loglik[0], out.filtered, out.predicted)
    return RaggedHMMPosteriorFiltered(*out)


@checking_lengths("log_likelihoods", _check_arguments)
def hmm_smoother(
    initial_probs: Float[ArrayLike, " num_states"],
    transition_matrix: _Transitions,
    log_likelihoods: Float[ArrayLike, "num_timesteps num_states"],
    *,
    lengths: _Lengths = None,
    method: str | AbstractScanMethod = "auto",
) -> HMMPosterior | RaggedHMMPosterior:
    r"""Forward-backward smoothing: $p(z_t \mid y_{1:T})$ and expected transitions.

    The forward filter, then a reverse scan of `scanalg.hmm.HMMBackward`: the
    backward kernels $B_t[i, j] = p(z_t = i \mid z_{t+1} = j, y_{1:t})$ carry the
    smoothed marginals back in time, $p(z_t \mid y_{1:T}) = B_t\, p(z_{t+1} \mid
    y_{1:T})$ (Markov kernels: no scaling problems at any length). Then

    $$p(z_t = i, z_{t+1} = j \mid y_{1:T}) = B_t[i, j]\, p(z_{t+1} = j \mid y_{1:T}).$$

    **Arguments:** as for `hmm_filter`.

    **Returns:**

    `HMMPosterior(marginal_loglik, filtered_probs, predicted_probs, smoothed_probs,
    initial_probs, trans_probs)`; `trans_probs` has shape `(T-1, K, K)` for a
    time-varying transition matrix and is summed over time, `(K, K)`, for a fixed one.
    With `lengths`, `RaggedHMMPosterior`: per-sequence `marginal_loglik (B,)`,
    `initial_probs (B, K)` and, for a fixed matrix, `trans_probs (B, K, K)`; packed
    probabilities (a time-varying `trans_probs` is zero at the moves between
    sequences).
    """
    model = _model(initial_probs, transition_matrix, log_likelihoods, lengths)
    forward = _forward(model, method)
    smoothed = _smoothed(model, forward, method)
    out = RaggedHMMPosterior(
        marginal_loglik=forward.loglik,
        filtered_probs=forward.filtered,
        predicted_probs=forward.predicted,
        smoothed_probs=smoothed,
        initial_probs=smoothed[model.segs.first],
        trans_probs=_trans_probs(model, forward, smoothed),
    )
    if not model.segs.single:
        return out
    trans = out.trans_probs if model.time_varying else out.trans_probs[0]
    return HMMPosterior(out.marginal_loglik[0], *out[1:4], out.initial_probs[0], trans_probs=trans)


@checking_lengths("log_likelihoods", _check_arguments)
def hmm_posterior_sample(
    key: PRNGKeyArray,
    initial_probs: Float[ArrayLike, " num_states"],
    transition_matrix: _Transitions,
    log_likelihoods: Float[ArrayLike, "num_timesteps num_states"],
    *,
    lengths: _Lengths = None,
    method: str | AbstractScanMethod = "auto",
    num_samples: int | None = None,
) -> tuple[
    Scalar | Float[Array, " num_sequences"],
    Int[Array, " num_timesteps"] | Int[Array, "num_samples num_timesteps"],
]:
    r"""Draw latent paths from $p(z_{1:T} \mid y_{1:T})$ by function composition.

    Forward filtering, then backward sampling written as composition: with one
    uniform $u_t$ per step, the map $E_t : [K] \to [K]$,

    $$E_t(j) = F_t^{-1}(u_t), \qquad F_t \text{ the CDF of }
      p(z_t \mid z_{t+1} = j, y_{1:t}) \propto p(z_t \mid y_{1:t}) A_t[z_t, j],$$

    draws $z_t$ given $z_{t+1} = j$, and $z_t = E_t \circ \cdots \circ E_{T-1}(z_T)$:
    a reverse scan of `scanalg.monoids.FiniteFunction`. Building each $E_t$ costs
    $O(K^2)$. The uniforms come from `key` only, `jax.random.uniform(key, (T,))` (or
    `(num_samples, T)`; with `lengths`, sequence $b$ uses its slice), so **the same key
    gives the same states for every method** (up to ties at float rounding level in the
    filter), and a batch of one sequence gives exactly the unbatched paths.

    **Arguments:**

    - `key`: a `jax.random` key.
    - `initial_probs`, `transition_matrix`, `log_likelihoods`, `lengths`, `method`:
      as for `hmm_filter`.
    - `num_samples`: `None` for one path, or the number of paths to draw.

    **Returns:**

    `(marginal_loglik, states)` with integer `states` of shape `(T,)`, or
    `(num_samples, T)`; with `lengths`, `marginal_loglik` has shape `(B,)` and the
    states are packed like the data.
    """
    model = _model(initial_probs, transition_matrix, log_likelihoods, lengths)
    forward = _forward(model, method)
    loglik = forward.loglik[0] if model.segs.single else forward.loglik
    n = model.ll.shape[0]
    if num_samples is None:
        u = jax.random.uniform(key, (n,), model.ll.dtype)
        return loglik, _sample(model, forward, u, method)
    u = jax.random.uniform(key, (num_samples, n), model.ll.dtype)
    return loglik, jax.vmap(lambda v: _sample(model, forward, v, method))(u)


@checking_lengths("log_likelihoods", _check_arguments)
def hmm_posterior_mode(
    initial_probs: Float[ArrayLike, " num_states"],
    transition_matrix: _Transitions,
    log_likelihoods: Float[ArrayLike, "num_timesteps num_states"],
    *,
    lengths: _Lengths = None,
    method: str | AbstractScanMethod = "auto",
) -> Int[Array, " num_timesteps"]:
    r"""The most likely path $\arg\max_{z_{1:T}} p(z_{1:T} \mid y_{1:T})$ (Viterbi).

    A forward max-plus scan (`scanalg.hmm.MaxPlus`) gives the best scores
    $\delta_t[k] = \max_{z_{1:t-1}} \log p(z_{1:t-1}, z_t = k, y_{1:t})$ (up to a
    constant per step); the back-pointers $\psi_{t+1}[j] = \arg\max_i \delta_t[i] +
    \log A_t[i, j]$ are maps $[K] \to [K]$, and the backtrace
    $z_t = \psi_{t+1}(z_{t+1})$ is a reverse scan of `scanalg.monoids.FiniteFunction`
    (with `lengths`, the move out of each sequence is the constant map to its best last
    state). Ties go to the smallest state index.

    **Arguments:** as for `hmm_filter`.

    **Returns:**

    The integer path, shape `(T,)` (with `lengths`, the paths packed like the data).
    """
    model = _model(initial_probs, transition_matrix, log_likelihoods, lengths)
    return _mode(model, method)
