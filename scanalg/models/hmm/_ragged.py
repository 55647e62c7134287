r"""Ragged batches for HMM inference: many sequences packed along time, one scan.

$B$ sequences of lengths $T_1, \dots, T_B$ are concatenated along time into arrays of
$N = \sum_b T_b$ steps, and `lengths` says where each ends. Every pass of
`scanalg.hmm` is then one scan over all $N$ steps, restarted at each sequence by
`scanalg.monoids.Segmented`, so a batch of very different lengths costs what one
sequence of length $N$ costs, with no padding and no Python loop over sequences.
The answers are exactly the per-sequence ones (up to rounding; samples and Viterbi
paths are identical given the same uniforms).

How each pass restarts (a packed step $t$ that crosses from one sequence to the
next is computed and then thrown away):

- forward filter and Viterbi: `Segmented(m, reset=π)` with the segment starts as
  flags, so the first step of each sequence starts from $\pi$;
- the per-sequence log-likelihoods: a `Segmented(Sum())` scan (tree-shaped, so
  accurate in float32);
- smoothing (backward kernels), backward sampling and the Viterbi backtrace: the
  step out of each sequence becomes a *constant* map (to that sequence's last
  filtered distribution, or last state), so the reverse scan restarts by itself, with
  no flag. (Each sequence starts its backward pass from its own state, which a
  single `reset` could not express.)

This module holds the implementation; `scanalg.hmm`'s functions take `lengths=` and
call it.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..._methods import AbstractScanMethod, Parallel
from ..._numerics import finite_or_zero, inverse_cdf, safe_log
from ..._scan import scan
from ...monoids import FiniteFunction, Segmented, Sum
from ._inference import _steps, _Transitions, _validate
from ._monoids import (
    HMMBackward,
    HMMForward,
    LogMatrix,
    MaxPlus,
    ScaledMatrix,
    filter_readout,
)


class RaggedHMMPosteriorFiltered(NamedTuple):
    r"""The filtering posterior of a packed batch of sequences.

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
    r"""The smoothing posterior of a packed batch of sequences.

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
    trans_probs: Float[Array, "..."]


# --------------------------------------------------------------------------------------
# The layout of a packed batch.
# --------------------------------------------------------------------------------------


class _Layout(NamedTuple):
    starts: Array  # (N,) bool: the first step of a sequence
    ends: Array  # (N,) bool: the last step of a sequence
    segment: Array  # (N,) int: the sequence of each step
    first: Array  # (B,) int: index of each sequence's first step
    last: Array  # (B,) int: index of each sequence's last step


def check_lengths(lengths, num_timesteps: int) -> Array:
    """Check `lengths` against the packed data: shape at trace time; values at trace time
    when they are concrete (`ValueError` with both numbers), else with `error_if`."""
    if isinstance(lengths, list | tuple):
        lengths = np.asarray(lengths)
    shape = jnp.shape(lengths)
    if len(shape) != 1 or shape[0] < 1:
        raise ValueError(
            f"`lengths` must be a 1-D array of the B >= 1 sequence lengths, got shape {shape}."
        )
    if not jnp.issubdtype(jnp.result_type(lengths), jnp.integer):
        raise TypeError(f"`lengths` must hold integers, got dtype {jnp.result_type(lengths)}.")
    if not isinstance(lengths, jax.core.Tracer):
        concrete = np.asarray(lengths)
        total = int(concrete.sum())
        if total != num_timesteps:
            raise ValueError(
                f"`lengths` sum to {total}, but `log_likelihoods` has {num_timesteps} time "
                "steps; the sequences must be packed one after another with no gaps."
            )
        if np.any(concrete < 1):
            bad = int(concrete.min())
            raise ValueError(f"Every sequence needs at least one time step; `lengths` has {bad}.")
        return jnp.asarray(concrete, jnp.int32)
    lengths = jnp.asarray(lengths, jnp.int32)
    lengths = eqx.error_if(
        lengths,
        jnp.sum(lengths) != num_timesteps,
        f"`lengths` do not sum to the {num_timesteps} time steps of `log_likelihoods`.",
    )
    return eqx.error_if(lengths, jnp.any(lengths < 1), "`lengths` has a length below one.")


def _layout(lengths: Array, n: int) -> _Layout:
    last = jnp.cumsum(lengths) - 1
    first = last - lengths + 1
    starts = jnp.zeros(n, bool).at[first].set(True)
    ends = jnp.zeros(n, bool).at[last].set(True)
    segment = jnp.cumsum(starts.astype(jnp.int32)) - 1
    return _Layout(starts, ends, segment, first, last)


def _rows(mask: Array, value: Array, rows: Array) -> Array:
    """`value` (one row, broadcast) where `mask`, else `rows`."""
    return jnp.where(mask[:, None], value[None], rows)


# --------------------------------------------------------------------------------------
# The passes, packed.
# --------------------------------------------------------------------------------------


def _forward(pi, a, ll, tv, lay: _Layout, method):
    """Packed forward filter: `(marginal_logliks (B,), filtered, predicted)`."""
    if tv:
        inner, raw = HMMForward(), ScaledMatrix(a, ll[:-1])
    else:
        inner, raw = HMMForward(a), ll[:-1]
    # Step t moves t -> t+1; a flagged step (a sequence's first) starts from pi.
    later = scan(Segmented(inner, reset=pi), (lay.starts[:-1], raw), init=pi, method=method)
    predicted = _rows(lay.starts, pi, jnp.concatenate([pi[None], later], axis=0))
    # As in `scanalg.hmm`: the mass that moves on (row sums of A_t), except at the last
    # step of each sequence, where nothing moves.
    row_sums = jnp.sum(a, axis=-1)
    if tv:
        row_sums = jnp.concatenate([row_sums, jnp.ones((1, ll.shape[1]), ll.dtype)])
    row_sums = jnp.where(lay.ends[:, None], 1, row_sums)
    out = jax.vmap(filter_readout)(predicted, row_sums, ll)
    filtered, log_normalisers = out.filtered, out.log_normaliser
    # Per-sequence sums, by a segmented parallel (tree-shaped) scan: accurate in float32.
    tree = Parallel(algorithm="associative_scan")
    _, running = scan(Segmented(Sum()), (lay.starts, log_normalisers), method=tree)
    return running[lay.last], filtered, predicted


def _smoothed(filtered, a, tv, lay: _Layout, method):
    r"""Packed smoothed marginals by the backward kernels (the RTS form of
    `scanalg.hmm`): $p(z_t \mid y) = B_t\, p(z_{t+1} \mid y)$, `(N, K)`."""
    n = filtered.shape[0]
    # Step t maps z_{t+1} back to z_t. The step out of a sequence's last state gets the
    # all-ones matrix, whose kernel is the constant map to that state's filtered (=
    # smoothed) distribution: so the reverse scan restarts there by itself.
    steps = _steps(a, tv, n - 1)
    steps = jnp.where(lay.ends[:-1, None, None], jnp.ones_like(steps), steps)
    earlier = scan(
        HMMBackward(), (filtered[:-1], steps), init=filtered[-1], reverse=True, method=method
    )
    return jnp.concatenate([earlier, filtered[-1:]], axis=0)


def _trans_probs(filtered, smoothed, a, tv, lay: _Layout, num):
    """Two-slice smoothed marginals, as in `scanalg.hmm`: packed `(N-1, K, K)`
    (time-varying, zero across sequences) or per-sequence expected counts `(B, K, K)`."""
    f = filtered[:-1]
    columns = jnp.einsum("ti,tij->tj", f, a) if tv else f @ a
    ratio = smoothed[1:] / jnp.where(columns > 0, columns, 1)
    ratio = jnp.where(lay.ends[:-1, None], 0, ratio)  # no step from one sequence to the next
    if tv:
        return f[:, :, None] * a * ratio[:, None, :]
    return a * jax.ops.segment_sum(f[:, :, None] * ratio[:, None, :], lay.segment[:-1], num)


def _sample(u, filtered, a, tv, lay: _Layout, method):
    """One packed posterior path from uniforms `u` of shape `(N,)`."""
    n, k = filtered.shape
    steps = _steps(a, tv, n - 1)
    weights = filtered[:-1, :, None] * steps
    # As in `scanalg.hmm`: an all-zero column falls back to the prior weights.
    weights = jnp.where(jnp.sum(weights, axis=-2, keepdims=True) > 0, weights, steps)
    table = inverse_cdf(weights, u[:-1])
    lasts = inverse_cdf(filtered[lay.last][:, :, None], u[lay.last])[:, 0]
    # The step out of a sequence's last state becomes the constant map to that state.
    crossing = jnp.broadcast_to(lasts[lay.segment[:-1]][:, None], (n - 1, k))
    table = jnp.where(lay.ends[:-1, None], crossing, table)
    earlier = scan(FiniteFunction(), table, init=lasts[-1], reverse=True, method=method)
    return jnp.concatenate([earlier, lasts[-1:]])


# --------------------------------------------------------------------------------------
# Compiled entry points (lengths already checked).
# --------------------------------------------------------------------------------------


@eqx.filter_jit
def _filter(pi, a, ll, lengths, method):
    pi, a, ll, tv = _validate(pi, a, ll)
    lay = _layout(lengths, ll.shape[0])
    return RaggedHMMPosteriorFiltered(*_forward(pi, a, ll, tv, lay, method))


@eqx.filter_jit
def _smoother(pi, a, ll, lengths, method):
    pi, a, ll, tv = _validate(pi, a, ll)
    lay = _layout(lengths, ll.shape[0])
    loglik, filtered, predicted = _forward(pi, a, ll, tv, lay, method)
    smoothed = _smoothed(filtered, a, tv, lay, method)
    return RaggedHMMPosterior(
        marginal_loglik=loglik,
        filtered_probs=filtered,
        predicted_probs=predicted,
        smoothed_probs=smoothed,
        initial_probs=smoothed[lay.first],
        trans_probs=_trans_probs(filtered, smoothed, a, tv, lay, lengths.shape[0]),
    )


@eqx.filter_jit
def _posterior_sample(key, pi, a, ll, lengths, method, num_samples):
    pi, a, ll, tv = _validate(pi, a, ll)
    lay = _layout(lengths, ll.shape[0])
    loglik, filtered, _ = _forward(pi, a, ll, tv, lay, method)
    n = ll.shape[0]
    if num_samples is None:
        u = jax.random.uniform(key, (n,), ll.dtype)
        return loglik, _sample(u, filtered, a, tv, lay, method)
    u = jax.random.uniform(key, (num_samples, n), ll.dtype)
    return loglik, jax.vmap(lambda v: _sample(v, filtered, a, tv, lay, method))(u)


@eqx.filter_jit
def _posterior_mode(pi, a, ll, lengths, method):
    pi, a, ll, tv = _validate(pi, a, ll)
    lay = _layout(lengths, ll.shape[0])
    n, k = ll.shape
    log_a = safe_log(a)
    inner, raw = (MaxPlus(), LogMatrix(log_a, ll[:-1])) if tv else (MaxPlus(log_a), ll[:-1])
    log_pi = safe_log(pi)
    init = log_pi - finite_or_zero(jnp.max(log_pi))
    later = scan(Segmented(inner, reset=init), (lay.starts[:-1], raw), init=init, method=method)
    scores = _rows(lay.starts, log_pi, jnp.concatenate([log_pi[None], later], axis=0)) + ll
    pointers = jnp.argmax(scores[:-1, :, None] + log_a, axis=-2).astype(jnp.int32)
    lasts = jnp.argmax(scores[lay.last], axis=-1).astype(jnp.int32)
    crossing = jnp.broadcast_to(lasts[lay.segment[:-1]][:, None], (n - 1, k))
    pointers = jnp.where(lay.ends[:-1, None], crossing, pointers)
    earlier = scan(FiniteFunction(), pointers, init=lasts[-1], reverse=True, method=method)
    return jnp.concatenate([earlier, lasts[-1:]])


def _num_timesteps(log_likelihoods) -> int:
    shape = jnp.shape(log_likelihoods)
    if len(shape) != 2 or shape[0] < 1:
        raise ValueError(
            "`log_likelihoods` must have shape (N, K) = (total time steps, num_states) "
            f"with N >= 1; got shape {shape}."
        )
    return shape[0]


# --------------------------------------------------------------------------------------
# Public functions (called by `scanalg.hmm` when `lengths` is given).
# --------------------------------------------------------------------------------------

_ARGS_DOC = r"""
    - `initial_probs`: $\pi$, shape `(K,)`, shared by all sequences.
    - `transition_matrix`: shape `(K, K)`, shared; or time-varying, packed like the
      data, shape `(N-1, K, K)` with entry $t$ moving from packed step $t$ to $t+1$
      (the entries at the last step of each sequence are not used).
    - `log_likelihoods`: the sequences' log-likelihoods concatenated along time,
      shape `(N, K)` with $N = \sum_b T_b$.
    - `lengths`: the lengths $T_1, \dots, T_B \ge 1$, shape `(B,)`; they must sum to
      $N$ (`ValueError` otherwise, naming both numbers).
    - `method`: the scan method (see `scanalg.scan`).
"""


def hmm_filter(
    initial_probs: Float[Array, " num_states"],
    transition_matrix: _Transitions,
    log_likelihoods: Float[Array, "num_timesteps num_states"],
    *,
    lengths: Int[Array, " num_sequences"],
    method: str | AbstractScanMethod = "auto",
) -> RaggedHMMPosteriorFiltered:
    lengths = check_lengths(lengths, _num_timesteps(log_likelihoods))
    return _filter(initial_probs, transition_matrix, log_likelihoods, lengths, method)


def hmm_smoother(
    initial_probs: Float[Array, " num_states"],
    transition_matrix: _Transitions,
    log_likelihoods: Float[Array, "num_timesteps num_states"],
    *,
    lengths: Int[Array, " num_sequences"],
    method: str | AbstractScanMethod = "auto",
) -> RaggedHMMPosterior:
    lengths = check_lengths(lengths, _num_timesteps(log_likelihoods))
    return _smoother(initial_probs, transition_matrix, log_likelihoods, lengths, method)


def hmm_posterior_sample(
    key: PRNGKeyArray,
    initial_probs: Float[Array, " num_states"],
    transition_matrix: _Transitions,
    log_likelihoods: Float[Array, "num_timesteps num_states"],
    *,
    lengths: Int[Array, " num_sequences"],
    method: str | AbstractScanMethod = "auto",
    num_samples: int | None = None,
) -> tuple[Float[Array, " num_sequences"], Int[Array, "..."]]:
    lengths = check_lengths(lengths, _num_timesteps(log_likelihoods))
    if num_samples is not None and not (isinstance(num_samples, int) and num_samples >= 1):
        raise ValueError(f"`num_samples` must be None or an int >= 1, got {num_samples!r}.")
    return _posterior_sample(
        key, initial_probs, transition_matrix, log_likelihoods, lengths, method, num_samples
    )


def hmm_posterior_mode(
    initial_probs: Float[Array, " num_states"],
    transition_matrix: _Transitions,
    log_likelihoods: Float[Array, "num_timesteps num_states"],
    *,
    lengths: Int[Array, " num_sequences"],
    method: str | AbstractScanMethod = "auto",
) -> Int[Array, " num_timesteps"]:
    lengths = check_lengths(lengths, _num_timesteps(log_likelihoods))
    return _posterior_mode(initial_probs, transition_matrix, log_likelihoods, lengths, method)


hmm_filter.__doc__ = rf"""Forward filtering of a packed batch of sequences.

    Like `scanalg.hmm.hmm_filter` on each sequence, in one segmented scan.

    **Arguments:**
{_ARGS_DOC}
    **Returns:**

    `RaggedHMMPosteriorFiltered(marginal_loglik (B,), filtered_probs (N, K),
    predicted_probs (N, K))`.
    """

hmm_smoother.__doc__ = rf"""Forward-backward smoothing of a packed batch of sequences.

    Like `scanalg.hmm.hmm_smoother` on each sequence: a segmented forward scan, and a
    reverse scan of the backward kernels restarted at each sequence's end. (For a
    fixed transition matrix this materialises one $K\times K$ kernel per step.)

    **Arguments:**
{_ARGS_DOC}
    **Returns:**

    `RaggedHMMPosterior`: per-sequence `marginal_loglik (B,)` and `initial_probs
    (B, K)`, packed `filtered_probs`, `predicted_probs`, `smoothed_probs (N, K)`, and
    `trans_probs` (per-sequence counts `(B, K, K)` for a fixed matrix, packed
    `(N-1, K, K)` for a time-varying one).
    """

hmm_posterior_sample.__doc__ = rf"""Posterior paths of a packed batch of sequences.

    Like `scanalg.hmm.hmm_posterior_sample` on each sequence. One uniform per packed
    step is drawn, `u = jax.random.uniform(key, (N,))` (or `(num_samples, N)`), and
    sequence $b$ uses its slice of `u`: so the same key gives the same paths for every
    method, and a batch of one sequence gives exactly `scanalg.hmm.hmm_posterior_sample`.

    **Arguments:**

    - `key`: a `jax.random` key.
{_ARGS_DOC}    - `num_samples`: `None` for one path per sequence, or the number of paths.

    **Returns:**

    `(marginal_loglik (B,), states)`, integer `states` packed like the data, shape
    `(N,)` or `(num_samples, N)`.
    """

hmm_posterior_mode.__doc__ = rf"""Viterbi paths of a packed batch of sequences.

    Like `scanalg.hmm.hmm_posterior_mode` on each sequence: a segmented max-plus scan,
    then a backtrace whose step out of each sequence is the constant map to that
    sequence's best last state.

    **Arguments:**
{_ARGS_DOC}
    **Returns:**

    The integer paths packed like the data, shape `(N,)`.
    """
