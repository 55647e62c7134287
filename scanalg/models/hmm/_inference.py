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

**Numerics.** Exact at any dynamic range, in one of two forms chosen per call
(`scanalg.models.hmm._forms`): when every transition probability in use is far from
zero (at least $K\sqrt{\text{tiny}/\epsilon}$: $10^{-15}K$ in float32), every
state keeps a share of the mass after each move and probabilities can be stored as
numbers: filtered probabilities normalised at every step, products of many steps
(parallel and blocked methods) with a log-scale per row (`scanalg.hmm.HMMForward`),
smoothing through Markov kernels (`scanalg.hmm.HMMBackward`). Otherwise (sparse or
left-to-right chains) a state's probability may fall below the float range and matter
again later, so everything is carried as logarithms (`scanalg.hmm.HMMLogForward`,
`scanalg.hmm.HMMLogBackward`), at the price of $K^2$ exponentials per step ($K^3$ per
product of two elements). The choice is made before tracing when the transition
matrix is concrete, else by a `lax.cond`. Nothing is clamped: structural zeros in the
matrices and $-\infty$ log-likelihoods are exact. The marginal log-likelihood is the
accurate sum of the per-step log-normalisers $\log p(y_t \mid y_{1:t-1})$ (each
computed without rounding bias, then summed by a tree or a double-word segmented scan),
so a float32 filter over a million steps keeps its digits. Samples never contain a
transition of prior probability zero. Viterbi works in log space.

**Impossible observations.** If at some step $s$ every state has probability zero,
`marginal_loglik` is $-\infty$. Filtered and predicted probabilities are the usual
ones before $s$; the predicted probabilities at $s$ are the usual ones too; the
filtered probabilities at $s$ and all probabilities after $s$ are zero vectors.
Smoothed and transition probabilities (conditioned on an impossible event) are zero
everywhere. Posterior samples and Viterbi paths are still valid state indices, but
carry no meaning. Nothing is NaN. In a ragged batch all this holds for the sequence
concerned alone.
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, Scalar

from ..._methods import AbstractScanMethod
from ..._numerics import (
    finite_or_zero,
    fold_states,
    inverse_cdf,
    inverse_cdf_rows,
    map_states,
    safe_log,
)
from ..._scan import scan
from ..._segments import Segments
from ..._validate import (
    attach_checks,
    checks_arguments,
    distribution_problem,
    float_dtype,
    nan_or_positive_infinity,
    positive_count,
)
from ...monoids import FiniteFunction, Segmented
from ._forms import (
    AbstractForm,
    LogProbabilities,
    Model,
    Probabilities,
    Readout,
    dense,
    exact_or_fast,
)
from ._monoids import LogMatrix, MaxPlus
from ._signature import dynamax_signature

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


def _check_arguments(arguments: dict) -> None:
    """A `ValueError` at trace time for arrays of the wrong shapes, naming the argument;
    `lengths` checked against the data (`Segments.check`: concrete lengths at once);
    `num_samples` and `k` whole numbers >= 1."""
    t = check_shapes(*(arguments[name] for name in _ARRAYS))
    arguments["lengths"] = Segments.check(arguments.get("lengths"), t)
    for count in ("num_samples", "k"):
        if arguments.get(count) is not None:
            arguments[count] = positive_count(arguments[count], count)


checked = checks_arguments(_check_arguments)


_ARRAYS = ("initial_probs", "transition_matrix", "log_likelihoods")


def check_shapes(initial_probs, transition_matrix, log_likelihoods) -> int:
    """`ValueError` for arrays of the wrong shapes, naming the argument; returns $T$."""
    pi, a, ll = (jnp.shape(x) for x in (initial_probs, transition_matrix, log_likelihoods))
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
    return t


def _exact(transition_matrix, lengths, num_timesteps: int) -> bool | None:
    """The numerical form, chosen before tracing when the transition matrix (and
    `lengths`) are concrete, so that only that one is compiled; `None` (chosen at run
    time) under an outer transformation."""
    if any(isinstance(x, jax.core.Tracer) for x in (transition_matrix, lengths)):
        return None
    if not jnp.issubdtype(jnp.result_type(transition_matrix), jnp.inexact):
        return None
    # (evaluated now, also when called while tracing, under an outer `jit` or `vmap`)
    with jax.ensure_compile_time_eval():
        return not bool(_dense_now(jnp.asarray(transition_matrix), lengths, num_timesteps))


@functools.partial(jax.jit, static_argnums=2)
def _dense_now(a, lengths, num_timesteps):
    """`dense` of a concrete model, before tracing the pass."""
    pi = jnp.zeros(a.shape[-1], a.dtype)
    ll = jnp.zeros((num_timesteps, a.shape[-1]), a.dtype)
    return dense(Model(pi, a, ll, Segments(lengths, num_timesteps)))


def validated_model(initial_probs, transition_matrix, log_likelihoods, lengths) -> Model:
    """Check values (with `error_if`; the shapes are checked before tracing by
    `checked`) and cast to one dtype."""
    pi = jnp.asarray(initial_probs)
    a = jnp.asarray(transition_matrix)
    ll = jnp.asarray(log_likelihoods)
    dtype = float_dtype(pi, a, ll)
    pi, a, ll = pi.astype(dtype), a.astype(dtype), ll.astype(dtype)
    # All tied to `pi` (used by every pass).
    rule = "(nonnegative, no NaN, summing to one along the last axis)"
    checks = [
        (distribution_problem(pi), f"`initial_probs` must be a probability vector {rule}."),
        (
            distribution_problem(a),
            f"Every row of `transition_matrix` must be a probability vector {rule}.",
        ),
        (nan_or_positive_infinity(ll), "`log_likelihoods` contains NaN or +inf."),
    ]
    return Model(attach_checks(pi, checks), a, ll, Segments(lengths, ll.shape[0]))


# --------------------------------------------------------------------------------------
# The passes, each written once over packed sequences.
# --------------------------------------------------------------------------------------


def _loglik(model: Model, log_normaliser: Array, method) -> Array:
    """Per-sequence log-likelihoods, `(B,)`: the log-normalisers summed accurately
    (`Segments.sum`). Outside `exact_or_fast`'s `lax.cond`: inside it, XLA:CPU fuses the
    readout into the sum's reduction and evaluates it one element at a time."""
    return model.segs.sum(log_normaliser, method=method)


def _impossible(form: AbstractForm, forward: Readout) -> Array:
    """Per step, whether its sequence has an impossible observation (a log-likelihood
    of $-\\infty$), `(N,)`."""
    segs = form.model.segs
    return segs.per_step(segs.any(jnp.isneginf(forward.log_normaliser)))


def _isolated(form: AbstractForm, forward: Readout) -> Array:
    """The kernel inputs, isolated per sequence.

    In a batch, a sequence with an impossible observation has zero vectors from there
    on; its kernels are built from uniform vectors instead (its own results are zero
    anyway), so that no zero vector reaches the other sequences' backward passes
    (products of kernels would carry it across the restarts). A single sequence needs
    no such isolation.
    """
    segs = form.model.segs
    if segs.single:
        return forward.kernel
    return jnp.where(_impossible(form, forward)[:, None], form.uniform(), forward.kernel)


def _zero_where_impossible(form: AbstractForm, forward: Readout, x: Array) -> Array:
    """`x` (leading axis $N$ or $N - 1$) zeroed in sequences with an impossible step (a
    single sequence's backward pass gives zeros there by itself: see `_isolated`)."""
    if form.model.segs.single:
        return x
    impossible = _impossible(form, forward)[: x.shape[0]]
    return jnp.where(impossible.reshape(-1, *[1] * (x.ndim - 1)), jnp.zeros_like(x), x)


def _smoothed(form: AbstractForm, forward: Readout, method) -> Array:
    r"""Smoothed marginals by the backward kernels (the RTS form),
    $p(z_t \mid y) = B_t\, p(z_{t+1} \mid y)$, packed `(N, K)`.

    One reverse scan over the $N - 1$ moves, from the last filtered distribution; the
    move out of each sequence's last step is the constant map to that step's filtered
    (= smoothed) distribution, so the scan restarts there by itself.
    """
    model = form.model
    kernel = _isolated(form, forward)
    restart = model.segs.end_flags()
    moves = (kernel[:-1], form.matrix) if model.time_varying else kernel[:-1]
    if restart is not None:
        moves = (moves, restart)
    last = form.probabilities(kernel[-1])
    monoid = form.backward_monoid(restarts=restart is not None)
    earlier = scan(monoid, moves, init=last, reverse=True, method=method)
    smoothed = jnp.concatenate([earlier, last[None]], axis=0)
    return _zero_where_impossible(form, forward, smoothed)


def _trans_probs(form: AbstractForm, forward: Readout, smoothed: Array) -> Array:
    r"""$p(z_t = i, z_{t+1} = j \mid y) = B_t[i, j]\, p(z_{t+1} = j \mid y)$: packed
    `(N-1, K, K)` (time-varying; zero across sequences), or summed over each sequence's
    moves, `(B, K, K)` (fixed)."""
    model = form.model
    kernel = _isolated(form, forward)
    row, total = form.columns(kernel)
    ratio = smoothed[1:] / jnp.where(total > 0, total, 1)
    ratio = model.segs.restart_reverse(ratio, jnp.zeros_like(model.pi))
    if model.time_varying:
        return map_states(model.num_states, lambda i: row(i) * ratio, axis=1)
    return form.counts(kernel, row, ratio)


def _sample(form: AbstractForm, forward: Readout, u: Array, method) -> Array:
    """One packed posterior path from uniforms `u` of shape `(N,)`: FFBS by composition."""
    # E_t(j): a draw of z_t given z_{t+1} = j from column j of the backward kernel,
    # weights filtered_t[i] A_t[i, j], column total (filtered_t A_t)_j. A column that
    # is all zero (z_{t+1} = j impossible given y_{1:t}: reached only after an
    # impossible step) falls back to the prior weights A_t[i, j], so a path always has
    # positive prior probability.
    model = form.model
    segs, a, k = model.segs, model.a, model.num_states
    row, total = form.columns(forward.kernel)
    dead = total <= 0

    def weights(i):
        return jnp.where(dead, model.row(a, i), row(i))

    prior_total = jnp.sum(a, axis=-2)
    table = inverse_cdf_rows(weights, k, jnp.where(dead, prior_total, total), u[:-1])
    # Each sequence's last state is drawn from its last filtered distribution; the move
    # out of it is the constant map to that state.
    lasts = inverse_cdf(forward.filtered[segs.last][:, :, None], u[segs.last])[:, 0]
    table = segs.restart_reverse(table, segs.per_step(lasts)[:-1, None])
    earlier = scan(
        FiniteFunction(check_range=False), table, init=lasts[-1], reverse=True, method=method
    )
    return jnp.concatenate([earlier, lasts[-1:]])


# The Viterbi pass holds the scores and back-pointers of at most about this many
# (step, state) pairs at once (see `_mode`).
_MODE_BLOCK_ENTRIES = 2**18


def _mode_blocks(num_steps: int, num_states: int) -> tuple[int, int]:
    """`(block length, number of blocks)` for `_mode`: one block up to twice
    `_MODE_BLOCK_ENTRIES` pairs, else blocks of a power-of-two length holding at most
    `_MODE_BLOCK_ENTRIES` pairs."""
    if num_steps * num_states <= 2 * _MODE_BLOCK_ENTRIES:
        return num_steps, 1
    size = 1 << max(0, (_MODE_BLOCK_ENTRIES // num_states).bit_length() - 1)
    return size, -(-num_steps // size)


def _mode(model: Model, method) -> Array:
    r"""The packed Viterbi path, by blocks of $L$ steps (checkpointing).

    A forward pass over the blocks keeps only the max-plus state before each block.
    A reverse pass over the blocks scans one block again from its checkpoint, takes
    the back-pointers $\psi_{t+1}[j] = \arg\max_i \delta_t[i] + \log A_t[i, j]$ of
    its scores $\delta_t$, then backtraces the block from the state its successor
    chose (a reverse scan of `FiniteFunction`), writing its part of the path in place.
    So at most $L \times K$ scores and back-pointers are held at once, for about twice
    the forward work; a short sequence is one block (no checkpoint). Within a block
    every scan uses `method`. The last block ends at the last step (it overlaps the
    one before, which then rewrites the overlap from the state that the last block
    chose after it). The move out of each sequence's last step is the constant map to
    its best last state, so the backtrace restarts there by itself. Ties go to the
    smallest state index.
    """
    segs, ll = model.segs, model.ll
    n, k = ll.shape
    size, num_blocks = _mode_blocks(n, k)
    log_a = safe_log(model.a)
    if model.time_varying and n == 1:  # (no move: a placeholder for the unused one)
        log_a = jnp.zeros((1, k, k), log_a.dtype)
    log_pi = safe_log(model.pi)
    init = log_pi - finite_or_zero(jnp.max(log_pi))
    monoid = MaxPlus() if model.time_varying else MaxPlus(log_a)
    chain = monoid if segs.single else Segmented(monoid, reset=init)

    def start(b):
        return jnp.minimum(b * size, n - size)

    def block(b):
        """Block `b`'s steps, their log-likelihoods, the matrices of their moves and the
        scan inputs (the move out of the last step is a placeholder: never used)."""
        steps = start(b) + jnp.arange(size)
        lik = ll[steps]
        a = log_a[jnp.minimum(steps, log_a.shape[0] - 1)] if model.time_varying else log_a
        moves = LogMatrix(a, lik) if model.time_varying else lik
        return steps, lik, a, (moves if segs.single else (segs.starts[steps], moves))

    def forward(before, b):  # the state before block b + 1's first step
        after = scan(chain, block(b)[3], init=before, method=method)
        following = after[start(b + 1) - start(b) - 1]
        return following, following

    def backward(carry, inputs):  # carry: the path so far, the state after block b
        path, following = carry
        b, before = inputs
        steps, lik, a, xs = block(b)
        after = scan(chain, xs, init=before, method=method)
        stepwise = jnp.concatenate([before[None], after[:-1]])
        if not segs.single:
            stepwise = jnp.where(segs.starts[steps][:, None], init, stepwise)
        scores = stepwise + lik
        psi = _best_predecessors(model, scores, a)
        best = jnp.argmax(scores, axis=-1).astype(jnp.int32)
        psi = jnp.where(segs.ends[steps][:, None], best[:, None], psi)
        part = scan(
            FiniteFunction(check_range=False), psi, init=following, reverse=True, method=method
        )
        path = jax.lax.dynamic_update_slice_in_dim(path, part, start(b), axis=0)
        previous = jnp.maximum(b - 1, 0)  # (block 0's value is not used)
        following = part[jnp.minimum(start(previous) + size - start(b), size - 1)]
        return (path, following), None

    empty = jnp.zeros(n, jnp.int32)
    after_end = jnp.zeros((), jnp.int32)  # (never used: the last step is an end)
    if num_blocks == 1:  # (no loops over blocks: a smaller program)
        return backward((empty, after_end), (0, init))[0][0]
    blocks = jnp.arange(num_blocks)
    _, checkpoints = jax.lax.scan(forward, init, blocks[:-1])
    checkpoints = jnp.concatenate([init[None], checkpoints])
    (path, _), _ = jax.lax.scan(backward, (empty, after_end), (blocks, checkpoints), reverse=True)
    return path


def _best_predecessors(model: Model, scores: Array, log_a: Array) -> Array:
    r"""$\psi_t[j] = \arg\max_i \delta_t[i] + \log A_t[i, j]$ (ties to the smallest $i$),
    shape `(L, K)` for `(L, K)` scores: a loop over $i$ with `(L, K)` temporaries (not
    the `(L, K, K)` candidates at once)."""

    def body(i, carry):
        best, arg = carry
        row = jax.lax.dynamic_index_in_dim(log_a, i, axis=log_a.ndim - 2, keepdims=False)
        candidate = jax.lax.dynamic_index_in_dim(scores, i, axis=1) + jnp.reshape(
            row, (-1, row.shape[-1])
        )
        better = candidate > best
        return jnp.where(better, candidate, best), jnp.where(better, i, arg)

    start = (jnp.full_like(scores, -jnp.inf), jnp.zeros(scores.shape, jnp.int32))
    return fold_states(model.num_states, body, start)[1]


# --------------------------------------------------------------------------------------
# Compiled entry points.
# --------------------------------------------------------------------------------------


def _with_form(model: Model, exact: bool | None, body: Callable[[AbstractForm], Any]) -> Any:
    """`body(form)` in the form chosen before tracing, or at run time (`exact_or_fast`)
    when the choice could not be made then (a traced transition matrix)."""
    if exact is None:
        return exact_or_fast(model, body)
    return body(LogProbabilities(model) if exact else Probabilities(model))


@eqx.filter_jit
def _filter(pi, a, ll, lengths, exact, method):
    model = validated_model(pi, a, ll, lengths)
    out = _with_form(model, exact, lambda form: form.filter(method))
    loglik = _loglik(model, out.log_normaliser, method)
    if model.segs.single:
        return HMMPosteriorFiltered(loglik[0], out.filtered, out.predicted)
    return RaggedHMMPosteriorFiltered(loglik, out.filtered, out.predicted)


@eqx.filter_jit
def _smoother(pi, a, ll, lengths, exact, method):
    model = validated_model(pi, a, ll, lengths)

    def body(form: AbstractForm):
        forward = form.filter(method)
        smoothed = _smoothed(form, forward, method)
        trans = _trans_probs(form, forward, smoothed)
        return forward.log_normaliser, forward.filtered, forward.predicted, smoothed, trans

    log_normaliser, filtered, predicted, smoothed, trans = _with_form(model, exact, body)
    out = RaggedHMMPosterior(
        marginal_loglik=_loglik(model, log_normaliser, method),
        filtered_probs=filtered,
        predicted_probs=predicted,
        smoothed_probs=smoothed,
        initial_probs=smoothed[model.segs.first],
        trans_probs=trans,
    )
    if not model.segs.single:
        return out
    trans = out.trans_probs if model.time_varying else out.trans_probs[0]
    return HMMPosterior(out.marginal_loglik[0], *out[1:4], out.initial_probs[0], trans_probs=trans)


@eqx.filter_jit
def _posterior_sample(key, pi, a, ll, lengths, exact, method, num_samples):
    model = validated_model(pi, a, ll, lengths)
    n = model.ll.shape[0]
    shape = (n,) if num_samples is None else (num_samples, n)
    u = jax.random.uniform(key, shape, model.ll.dtype)

    def body(form: AbstractForm):
        forward = form.filter(method)

        def sample(v):
            return _sample(form, forward, v, method)

        return forward.log_normaliser, sample(u) if num_samples is None else jax.vmap(sample)(u)

    log_normaliser, states = _with_form(model, exact, body)
    loglik = _loglik(model, log_normaliser, method)
    return (loglik[0] if model.segs.single else loglik), states


@eqx.filter_jit
def _posterior_mode(pi, a, ll, lengths, method):
    return _mode(validated_model(pi, a, ll, lengths), method)


# --------------------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------------------


@dynamax_signature
@checked
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
    exact = _exact(transition_matrix, lengths, jnp.shape(log_likelihoods)[0])
    return _filter(initial_probs, transition_matrix, log_likelihoods, lengths, exact, method)


@dynamax_signature(compute_trans_probs=True)
@checked
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
    exact = _exact(transition_matrix, lengths, jnp.shape(log_likelihoods)[0])
    return _smoother(initial_probs, transition_matrix, log_likelihoods, lengths, exact, method)


@dynamax_signature
@checked
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
    exact = _exact(transition_matrix, lengths, jnp.shape(log_likelihoods)[0])
    return _posterior_sample(
        key, initial_probs, transition_matrix, log_likelihoods, lengths, exact, method, num_samples
    )


@dynamax_signature
@checked
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

    Long sequences are worked in blocks of $L$ steps (checkpointing): besides the path,
    the pass holds the scores and back-pointers of one block ($L K \le 2^{18}$) and one
    max-plus state ($K$ numbers) per block, at the price of a second forward scan of
    each block.

    **Arguments:** as for `hmm_filter`.

    **Returns:**

    The integer path, shape `(T,)` (with `lengths`, the paths packed like the data).
    """
    return _posterior_mode(initial_probs, transition_matrix, log_likelihoods, lengths, method)
