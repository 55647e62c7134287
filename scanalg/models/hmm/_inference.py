r"""Hidden Markov model inference, dynamax-compatible, on any scan method.

The model: $z_1 \sim \pi$, $z_{t+1} \mid z_t \sim A_t[z_t, \cdot]$, and observations
entering only through log-likelihoods $\ell_t[k] = \log p(y_t \mid z_t = k)$.
The transition matrix is fixed, shape `(K, K)`, or time-varying, shape
`(T-1, K, K)` with `transition_matrix[t]` moving from step $t$ to $t+1$.

Every function here builds scan elements, calls `scanalg.scan`, and reads the
results out; `method=` is passed to the scan, so all methods return the same answer
(up to rounding; samples and Viterbi paths are integer and identical).

**Numerics.** Filtered probabilities are normalised at every step; products of many
steps (parallel and blocked methods) keep a log-scale per row (see
`scanalg.monoids.HMMForward`), so no product underflows; the smoother carries
probabilities back through Markov kernels (`scanalg.monoids.HMMBackward`), whose
entries never leave $[0, 1]$. Nothing is clamped: structural zeros in the matrices
and $-\infty$ log-likelihoods are exact. The marginal log-likelihood is the tree sum
of the per-step log-normalisers $\log p(y_t \mid y_{1:t-1})$, accurate in float32
for very long sequences (a running sum is not).

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
carry no meaning. Nothing is NaN.
"""

import functools
import inspect
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray, Scalar

from ..._methods import AbstractScanMethod, as_method
from ..._numerics import finite_or_zero, inverse_cdf, inverse_cdf_rows, safe_log, tree_sum
from ..._scan import scan
from ..._validate import distribution_problem, float_dtype
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
    Float[Array, "num_states num_states"]
    | Float[Array, "num_timesteps_minus_1 num_states num_states"]
)


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
    trans_probs: _Transitions | None = None


# --------------------------------------------------------------------------------------
# Validation.
# --------------------------------------------------------------------------------------


def _validate(initial_probs, transition_matrix, log_likelihoods):
    """Check shapes (at trace time) and values (with `error_if`); cast to one dtype.

    Returns `(initial_probs, transition_matrix, log_likelihoods, time_varying)`.
    """
    pi = jnp.asarray(initial_probs)
    a = jnp.asarray(transition_matrix)
    ll = jnp.asarray(log_likelihoods)
    if ll.ndim != 2 or ll.shape[0] < 1:
        raise ValueError(
            "`log_likelihoods` must have shape (T, K) = (num_timesteps, num_states) with "
            f"T >= 1; got shape {ll.shape}."
        )
    t, k = ll.shape
    if pi.shape != (k,):
        raise ValueError(
            f"`initial_probs` must have shape (K,) = ({k},) to match `log_likelihoods` of "
            f"shape {ll.shape}; got shape {pi.shape}."
        )
    if a.ndim == 2:
        time_varying = False
        if a.shape != (k, k):
            raise ValueError(
                f"`transition_matrix` must have shape (K, K) = ({k}, {k}) or "
                f"(T-1, K, K) = ({t - 1}, {k}, {k}); got shape {a.shape}."
            )
    elif a.ndim == 3:
        time_varying = True
        if a.shape != (t - 1, k, k):
            raise ValueError(
                f"A time-varying `transition_matrix` must have shape (T-1, K, K) = "
                f"({t - 1}, {k}, {k}) for `log_likelihoods` of shape {ll.shape}; got shape "
                f"{a.shape}."
            )
    else:
        raise ValueError(
            f"`transition_matrix` must have shape (K, K) = ({k}, {k}) or (T-1, K, K) = "
            f"({t - 1}, {k}, {k}); got shape {a.shape}."
        )
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
    return pi, a, ll, time_varying


# --------------------------------------------------------------------------------------
# The passes: each builds elements, calls `scan`, and reads out.
# --------------------------------------------------------------------------------------


def _steps(a: Array, time_varying: bool, num: int) -> Array:
    """The `num` transition matrices, one per step, as an array `(num, K, K)`."""
    return a if time_varying else jnp.broadcast_to(a, (num, *a.shape))


def _forward(pi, a, ll, time_varying, method):
    r"""Forward filter: `(marginal_loglik, filtered_probs, predicted_probs)`.

    One exclusive forward scan over all $T$ steps: the state before step $t$ is the
    prediction $p_t = p(z_t \mid y_{1:t-1})$. The loop stores only the predictions;
    the filtered $f_t$ and the log-normalisers $m_t + \log(q_t \cdot A_t\mathbf{1})$,
    $q_t = p_t \odot e^{\ell_t - m_t}$, are read out of all of them at once afterwards
    (`filter_readout` under `vmap`: every extra kernel in the loop body costs more than
    the whole vectorised pass). $A_t\mathbf{1} = \mathbf{1}$ for a stochastic matrix;
    keeping the moved mass makes the log-likelihood the exact path sum for any
    nonnegative input, so its gradient is the path sum's. The last step moves nothing
    (its row sums are taken as ones).

    Inside the loop, when $\pi$ and every $A_t$ have no zero entries (above the dtype's
    smallest normal number over its epsilon), every prediction has full support, and
    the shift can be the largest $\ell_t$ over all states, with the exponentials
    computed before the loop (`Evidence`): the fast path. Otherwise the shift is the
    largest $\ell_t$ on the support of $p_t$, found in the loop (exact for structural
    zeros). The choice is a `lax.cond` around the loop alone (under `vmap` over the
    matrices, both run), made for the sequential method only: the parallel and blocked
    ones spend their time in `combine`, where the two paths do the same work, and
    compile once instead of twice. The readout always uses the support shift
    $m_t$ (exact in both cases).
    """
    if time_varying:
        # The step out of the last state is never used: any matrix will do.
        steps = jnp.concatenate([a, jnp.eye(a.shape[-1], dtype=a.dtype)[None]])
        monoid = HMMForward()
    else:
        monoid = HMMForward(a)

    def predictions(fast: bool):
        lik = Evidence.of(ll) if fast else ll
        raw = ScaledMatrix(steps, lik) if time_varying else lik
        return scan(monoid, raw, init=pi, exclusive=True, method=method)

    method = as_method(method).resolve(monoid, ScaledMatrix(steps, ll) if time_varying else ll, pi)
    if not method.combines_with_init:
        info = jnp.finfo(ll.dtype)
        floor = info.tiny / info.eps
        dense = jax.lax.stop_gradient((jnp.min(pi) > floor) & (jnp.min(a, initial=1) > floor))
        # (Only the loop inside the `cond`: the branch then writes the predictions
        # straight into the output, and the exponentials are a temporary of the fast
        # branch alone; around the readout too, the `cond` doubled the peak memory.)
        predicted = jax.lax.cond(dense, lambda: predictions(True), lambda: predictions(False))
    else:  # (parallel and blocked scans spend their time in `combine`: one branch
        # halves their compile time)
        predicted = predictions(False)
    # The exact (support-shifted) readout, for both paths.
    if time_varying:  # (the padded last matrix is the identity: it moves everything)
        out = jax.vmap(filter_readout)(predicted, jnp.sum(steps, axis=-1), ll)
        log_moved = out.log_normaliser
    else:  # the last step moves nothing: its row sums are ones
        out = jax.vmap(filter_readout, in_axes=(0, None, 0))(predicted, jnp.sum(a, axis=-1), ll)
        last = filter_readout(predicted[-1], jnp.ones_like(pi), ll[-1]).log_normaliser
        log_moved = out.log_normaliser.at[-1].set(last)
    filtered = out.filtered
    return tree_sum(log_moved), filtered, predicted


def _smoothed(filtered, a, time_varying, method):
    """Backward pass: `p(z_t | y_{1:T})` from the backward kernels, `(T, K)`."""
    if time_varying:
        monoid, raw = HMMBackward(), (filtered[:-1], a)
    else:
        monoid, raw = HMMBackward(a), filtered[:-1]
    earlier = scan(monoid, raw, init=filtered[-1], reverse=True, method=method)
    return jnp.concatenate([earlier, filtered[-1:]], axis=0)


def _trans_probs(filtered, smoothed, a, time_varying):
    r"""$p(z_t = i, z_{t+1} = j \mid y_{1:T}) = B_t[i, j]\, p(z_{t+1} = j \mid y_{1:T})$,
    summed over $t$ for a fixed matrix."""
    f = filtered[:-1]
    if time_varying:
        columns = jnp.einsum("ti,tij->tj", f, a)
    else:
        columns = f @ a
    ratio = smoothed[1:] / jnp.where(columns > 0, columns, 1)
    if time_varying:
        return f[:, :, None] * a * ratio[:, None, :]
    return a * (f.T @ ratio)


def _sample_one(u, filtered, a, time_varying, method):
    """One posterior path from uniforms `u` of shape `(T,)`: FFBS by composition."""
    # E_t(j): a draw of z_t given z_{t+1} = j from column j of the backward kernel,
    # weights filtered_t[i] A_t[i, j], column total (filtered_t A_t)_j. A column that
    # is all zero (z_{t+1} = j impossible given y_{1:t}: reached only after an
    # impossible step, or when float underflow made successive filtered distributions
    # disagree) falls back to the prior weights A_t[i, j], so a path always has
    # positive prior probability.
    f = filtered[:-1]
    if time_varying:
        total = jnp.einsum("ti,tij->tj", f, a)
        prior_total = jnp.sum(a, axis=-2)
    else:
        total = f @ a
        prior_total = jnp.sum(a, axis=0)
    dead = total <= 0

    def row(i):
        prior = a[:, i, :] if time_varying else a[i][None, :]
        return jnp.where(dead, prior, f[:, i, None] * prior)

    k = filtered.shape[1]
    table = inverse_cdf_rows(row, k, jnp.where(dead, prior_total, total), u[:-1])
    last = inverse_cdf(filtered[-1][:, None], u[-1])[0]
    earlier = scan(FiniteFunction(), table, init=last, reverse=True, method=method)
    return jnp.concatenate([earlier, last[None]])


def _jit_checking_lengths(fn):
    """`eqx.filter_jit(fn)`, checking a concrete `lengths` against the data *before*
    tracing, so a mismatch is a `ValueError` naming both numbers (under an outer `jit`
    the check is an `equinox.error_if`)."""
    jitted = eqx.filter_jit(fn)
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        lengths = bound.arguments.get("lengths")
        if lengths is not None:
            from ._ragged import check_lengths

            num = jnp.shape(bound.arguments["log_likelihoods"])[0]
            bound.arguments["lengths"] = check_lengths(lengths, num)
        return jitted(*bound.args, **bound.kwargs)

    return wrapper


# --------------------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------------------


@_jit_checking_lengths
def hmm_filter(
    initial_probs: Float[Array, " num_states"],
    transition_matrix: _Transitions,
    log_likelihoods: Float[Array, "num_timesteps num_states"],
    *,
    lengths: Int[Array, " num_sequences"] | None = None,
    method: str | AbstractScanMethod = "auto",
) -> HMMPosteriorFiltered:
    r"""Forward filtering: $p(z_t \mid y_{1:t})$ and $\log p(y_{1:T})$.

    A forward scan of `scanalg.monoids.HMMForward` with initial state $\pi$: with the
    sequential method it costs one $K$-vector times $K\times K$ matrix per step.

    **Arguments:**

    - `initial_probs`: $\pi = p(z_1)$, shape `(K,)`.
    - `transition_matrix`: $A[i, j] = p(z_{t+1} = j \mid z_t = i)$, shape `(K, K)`,
      or time-varying, shape `(T-1, K, K)`.
    - `log_likelihoods`: $\ell_t[k] = \log p(y_t \mid z_t = k)$, shape `(T, K)`;
      $-\infty$ allowed.
    - `lengths`: optional, shape `(B,)`: `log_likelihoods` holds $B$ sequences of
      these lengths concatenated along time (a ragged batch, $\sum_b T_b = T$; a
      time-varying `transition_matrix` is packed the same way, `(T-1, K, K)`). Every
      sequence gets exactly its own answer, in one call; `marginal_loglik` then has
      shape `(B,)`.
    - `method`: the scan method (see `scanalg.scan`).

    **Returns:**

    `HMMPosteriorFiltered(marginal_loglik, filtered_probs, predicted_probs)`.
    """
    if lengths is not None:
        from . import _ragged as _hmm_ragged

        return _hmm_ragged.hmm_filter(
            initial_probs, transition_matrix, log_likelihoods, lengths=lengths, method=method
        )
    pi, a, ll, tv = _validate(initial_probs, transition_matrix, log_likelihoods)
    return HMMPosteriorFiltered(*_forward(pi, a, ll, tv, method))


@_jit_checking_lengths
def hmm_smoother(
    initial_probs: Float[Array, " num_states"],
    transition_matrix: _Transitions,
    log_likelihoods: Float[Array, "num_timesteps num_states"],
    *,
    lengths: Int[Array, " num_sequences"] | None = None,
    method: str | AbstractScanMethod = "auto",
) -> HMMPosterior:
    r"""Forward-backward smoothing: $p(z_t \mid y_{1:T})$ and expected transitions.

    The forward filter, then a reverse scan of `scanalg.monoids.HMMBackward`: the
    backward kernels $B_t[i, j] = p(z_t = i \mid z_{t+1} = j, y_{1:t})$ carry the
    smoothed marginals back in time, $p(z_t \mid y_{1:T}) = B_t\, p(z_{t+1} \mid
    y_{1:T})$ (Markov kernels: no scaling problems at any length). Then

    $$p(z_t = i, z_{t+1} = j \mid y_{1:T}) = B_t[i, j]\, p(z_{t+1} = j \mid y_{1:T}).$$

    **Arguments:** as for `hmm_filter`.

    **Returns:**

    `HMMPosterior(marginal_loglik, filtered_probs, predicted_probs, smoothed_probs,
    initial_probs, trans_probs)`; `trans_probs` has shape `(T-1, K, K)` for a
    time-varying transition matrix and is summed over time, `(K, K)`, for a fixed one.
    """
    if lengths is not None:
        from . import _ragged as _hmm_ragged

        return _hmm_ragged.hmm_smoother(
            initial_probs, transition_matrix, log_likelihoods, lengths=lengths, method=method
        )
    pi, a, ll, tv = _validate(initial_probs, transition_matrix, log_likelihoods)
    loglik, filtered, predicted = _forward(pi, a, ll, tv, method)
    smoothed = _smoothed(filtered, a, tv, method)
    return HMMPosterior(
        marginal_loglik=loglik,
        filtered_probs=filtered,
        predicted_probs=predicted,
        smoothed_probs=smoothed,
        initial_probs=smoothed[0],
        trans_probs=_trans_probs(filtered, smoothed, a, tv),
    )


@_jit_checking_lengths
def hmm_posterior_sample(
    key: PRNGKeyArray,
    initial_probs: Float[Array, " num_states"],
    transition_matrix: _Transitions,
    log_likelihoods: Float[Array, "num_timesteps num_states"],
    *,
    lengths: Int[Array, " num_sequences"] | None = None,
    method: str | AbstractScanMethod = "auto",
    num_samples: int | None = None,
) -> tuple[Scalar, Int[Array, " num_timesteps"] | Int[Array, "num_samples num_timesteps"]]:
    r"""Draw latent paths from $p(z_{1:T} \mid y_{1:T})$ by function composition.

    Forward filtering, then backward sampling written as composition: with one
    uniform $u_t$ per step, the map $E_t : [K] \to [K]$,

    $$E_t(j) = F_t^{-1}(u_t), \qquad F_t \text{ the CDF of }
      p(z_t \mid z_{t+1} = j, y_{1:t}) \propto p(z_t \mid y_{1:t}) A_t[z_t, j],$$

    draws $z_t$ given $z_{t+1} = j$, and $z_t = E_t \circ \cdots \circ E_{T-1}(z_T)$:
    a reverse scan of `scanalg.monoids.FiniteFunction`. Building each $E_t$ costs
    $O(K^2)$. The uniforms come from `key` only, so **the same key gives the same
    states for every method** (up to ties at float rounding level in the filter).

    **Arguments:**

    - `key`: a `jax.random` key.
    - `initial_probs`, `transition_matrix`, `log_likelihoods`, `lengths`, `method`:
      as for `hmm_filter`.
    - `num_samples`: `None` for one path, or the number of paths to draw.

    **Returns:**

    `(marginal_loglik, states)` with integer `states` of shape `(T,)`, or
    `(num_samples, T)`.
    """
    if lengths is not None:
        from . import _ragged as _hmm_ragged

        return _hmm_ragged.hmm_posterior_sample(
            key,
            initial_probs,
            transition_matrix,
            log_likelihoods,
            lengths=lengths,
            method=method,
            num_samples=num_samples,
        )
    pi, a, ll, tv = _validate(initial_probs, transition_matrix, log_likelihoods)
    loglik, filtered, _ = _forward(pi, a, ll, tv, method)
    t = ll.shape[0]
    if num_samples is None:
        u = jax.random.uniform(key, (t,), ll.dtype)
        return loglik, _sample_one(u, filtered, a, tv, method)
    if not (isinstance(num_samples, int) and num_samples >= 1):
        raise ValueError(f"`num_samples` must be None or an int >= 1, got {num_samples!r}.")
    u = jax.random.uniform(key, (num_samples, t), ll.dtype)
    sample = jax.vmap(lambda v: _sample_one(v, filtered, a, tv, method))
    return loglik, sample(u)


@_jit_checking_lengths
def hmm_posterior_mode(
    initial_probs: Float[Array, " num_states"],
    transition_matrix: _Transitions,
    log_likelihoods: Float[Array, "num_timesteps num_states"],
    *,
    lengths: Int[Array, " num_sequences"] | None = None,
    method: str | AbstractScanMethod = "auto",
) -> Int[Array, " num_timesteps"]:
    r"""The most likely path $\arg\max_{z_{1:T}} p(z_{1:T} \mid y_{1:T})$ (Viterbi).

    A forward max-plus scan (`scanalg.monoids.MaxPlus`) gives the best scores
    $\delta_t[k] = \max_{z_{1:t-1}} \log p(z_{1:t-1}, z_t = k, y_{1:t})$ (up to a
    constant per step); the back-pointers $\psi_{t+1}[j] = \arg\max_i \delta_t[i] +
    \log A_t[i, j]$ are maps $[K] \to [K]$, and the backtrace
    $z_t = \psi_{t+1}(z_{t+1})$ is a reverse scan of `scanalg.monoids.FiniteFunction`.
    Ties go to the smallest state index.

    **Arguments:** as for `hmm_filter`.

    **Returns:**

    The integer path, shape `(T,)`.
    """
    if lengths is not None:
        from . import _ragged as _hmm_ragged

        return _hmm_ragged.hmm_posterior_mode(
            initial_probs, transition_matrix, log_likelihoods, lengths=lengths, method=method
        )
    pi, a, ll, tv = _validate(initial_probs, transition_matrix, log_likelihoods)
    log_a = safe_log(a)
    monoid, raw = (MaxPlus(), LogMatrix(log_a, ll[:-1])) if tv else (MaxPlus(log_a), ll[:-1])
    log_pi = safe_log(pi)
    init = log_pi - finite_or_zero(jnp.max(log_pi))
    later = scan(monoid, raw, init=init, method=method)
    scores = jnp.concatenate([log_pi[None], later], axis=0) + ll
    pointers = jnp.argmax(scores[:-1, :, None] + log_a, axis=-2).astype(jnp.int32)
    last = jnp.argmax(scores[-1]).astype(jnp.int32)
    earlier = scan(FiniteFunction(), pointers, init=last, reverse=True, method=method)
    return jnp.concatenate([earlier, last[None]])
