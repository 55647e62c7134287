"""Shared numerics (no family owns them): guarded logs, normalisation, accurate sums,
inverse-CDF draws, the run-time choice between a fast and an exact form."""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array


def safe_log(x: Array) -> Array:
    """`log(x)` with `log(0) = -inf` and a zero (not NaN) gradient there."""
    positive = x > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, x, 1)), -jnp.inf)


def finite_or_zero(x: Array) -> Array:
    """Replace $\\pm\\infty$ by zero: a safe shift for log-space normalisation."""
    return jnp.where(jnp.isfinite(x), x, 0)


def logsumexp(x: Array, axis: int | None = None, keepdims: bool = False) -> Array:
    r"""$\log \sum e^{x}$ along `axis`, $-\infty$ for an all-$-\infty$ slice, with a
    NaN-free gradient there (zero)."""
    top = jax.lax.stop_gradient(finite_or_zero(jnp.max(x, axis=axis, keepdims=True)))
    total = jnp.sum(jnp.exp(x - top), axis=axis, keepdims=True)
    out = safe_log(total) + top
    return out if keepdims else jnp.squeeze(out, axis=axis)


def straight_through_one(x: Array) -> Array:
    """Ones with the gradient of `x`: for a quantity that is one in exact arithmetic
    (the row sums of a stochastic matrix) but not after rounding, whose derivative
    still matters (off the probability simplex)."""
    return 1 + (x - jax.lax.stop_gradient(x))


_UNROLL_STATES = 8


def fast_or_exact(exact_enough: Array, fast: Callable[[], Any], exact: Callable[[], Any]) -> Any:
    """`fast()` where `exact_enough`, else `exact()`: one `lax.cond` (both traced and
    compiled), each branch rematerialised (`jax.checkpoint`), since differentiated, a
    `cond` keeps the residuals of both branches (zeros for the one not taken), which
    cost more than running the taken branch's forward again."""
    return jax.lax.cond(exact_enough, jax.checkpoint(fast), jax.checkpoint(exact))


def fold_states(num_states: int, body, init, start: int = 0):
    """`body(i, carry)` for `i = start, ..., num_states - 1`, from `init`: a loop over the
    states of a model, computing one `(..., K)` slice at a time (never a `K`-fold
    temporary). Unrolled up to 8 states (the slices fuse into one kernel); beyond, a
    `fori_loop` over groups of 8 unrolled states and the remainder unrolled after it, so
    that compile time does not grow with $K$ and the carry makes one round trip through
    memory per 8 states, not per state."""

    def unrolled(first, count, carry):
        for j in range(count):
            carry = body(first + j, carry)
        return carry

    if num_states <= _UNROLL_STATES:
        return unrolled(start, num_states - start, init)
    groups, rest = divmod(num_states - start, _UNROLL_STATES)
    carry = jax.lax.fori_loop(
        0, groups, lambda g, c: unrolled(start + g * _UNROLL_STATES, _UNROLL_STATES, c), init
    )
    return unrolled(num_states - rest, rest, carry)


def map_states(num_states: int, fn, axis: int = 0) -> Array:
    """`fn(i)` for `i = 0, ..., num_states - 1`, stacked along a new `axis`: unrolled up
    to 8 states, else one `lax.map` (compile time flat in $K$; `i` is then traced)."""
    if num_states <= _UNROLL_STATES:
        return jnp.stack([fn(i) for i in range(num_states)], axis=axis)
    return jnp.moveaxis(jax.lax.map(fn, jnp.arange(num_states)), 0, axis)


def reduce_states(op, x: Array) -> Array:
    """Reduce the last (states) axis with `op` (`jnp.add` or `jnp.maximum`).

    Up to 8 states, as a chain of elementwise ops over the axis's slices: XLA:CPU
    reduces a short minor axis of a long (vmapped) array slowly, and this form is
    2-3x faster at $K = 2$ (a loop step is no slower).
    """
    k = x.shape[-1]
    if 1 <= k <= _UNROLL_STATES:
        return functools.reduce(op, [x[..., i] for i in range(k)])
    return (jnp.sum if op is jnp.add else jnp.max)(x, axis=-1)


def normalise(x: Array, axis: int = -1) -> Array:
    """Divide by the sum along `axis`; an all-zero slice stays zero."""
    total = jnp.sum(x, axis=axis, keepdims=True)
    return x / jnp.where(total > 0, total, 1)


def tree_sum(x: Array, fan_in: int = 32) -> Array:
    r"""Sum along the leading axis by a balanced tree of fan-in 32: rounding error
    $O(\log T)$ ulps, not the $O(T)$ of a running sum, and cheap ($\log_{32} T$
    levels). Zero for an empty axis."""
    if x.shape[0] == 0:
        return jnp.zeros(x.shape[1:], x.dtype)
    while x.shape[0] > 1:
        padded = -(-x.shape[0] // fan_in) * fan_in
        pad = [(0, padded - x.shape[0])] + [(0, 0)] * (x.ndim - 1)
        x = jnp.pad(x, pad).reshape(-1, fan_in, *x.shape[1:]).sum(axis=1)
    return x[0]


def two_sum(a: Array, b: Array) -> tuple[Array, Array]:
    r"""Knuth's error-free sum: `(s, e)` with $s = \mathrm{fl}(a + b)$ and
    $s + e = a + b$ exactly (`e` is zero where `s` is not finite)."""
    s = a + b
    b_virtual = s - a
    e = (a - (s - b_virtual)) + (b - b_virtual)
    return s, jnp.where(jnp.isfinite(s), e, 0)


def compensated_sum(x: Array) -> tuple[Array, Array]:
    r"""Sum the last axis in double-word arithmetic: `(high, low)` with
    $\text{high} + \text{low}$ the sum up to $O(\epsilon^2)$ relative (no rounding
    of the sum itself: a sum that is always near one, or any power of two, rounds on
    an uneven grid, and its rounding has a consistent sign). A chain of `two_sum` for
    up to 8 entries, a pairwise tree for more."""
    high, low = x, jnp.zeros_like(x)
    if x.shape[-1] <= _UNROLL_STATES:
        high, low = x[..., 0], low[..., 0]
        for i in range(1, x.shape[-1]):
            high, error = two_sum(high, x[..., i])
            low = low + error
        return high, low
    while high.shape[-1] > 1:
        if high.shape[-1] % 2:
            pad = [(0, 0)] * (x.ndim - 1) + [(0, 1)]
            high, low = jnp.pad(high, pad), jnp.pad(low, pad)
        high, error = two_sum(high[..., ::2], high[..., 1::2])
        low = low[..., ::2] + low[..., 1::2] + error
    return high[..., 0], low[..., 0]


def log_compensated(high: Array, low: Array) -> Array:
    r"""$\log(\text{high} + \text{low})$ for a double-word number (`compensated_sum`):
    $\log(\text{high}) + \text{low} / \text{high}$ ($-\infty$ for zero)."""
    positive = high > 0
    return safe_log(high) + low / jnp.where(positive, high, 1)


def inverse_cdf_rows(row, num_candidates: int, total: Array, u: Array) -> Array:
    r"""Inverse-CDF draws, one per column $j$, all from the same uniform.

    Candidate $i$ has weights `row(i)` of shape `(..., J)` (computed on the fly, never
    stored), the columns' totals are `total`, and `u` has shape `(...,)`. Returns for
    each column the largest $i$ with $w_{ij} > 0$ and
    $\sum_{i' < i} w_{i'j} \le u \cdot \text{total}_j$: the inverse CDF, and never a
    zero-weight candidate whatever the rounding. One fused pass over the candidates
    with a running sum: $O(KJ)$ work (no `cumsum`, which XLA may lower to $O(K^2 J)$).
    Columns of zeros give 0.
    """
    target = u[..., None] * total

    def candidate(i, carry):
        running, choice = carry
        w = row(i)
        choice = jnp.where((w > 0) & (running <= target), jnp.asarray(i, jnp.int32), choice)
        return running + w, choice

    init = (jnp.zeros_like(target), jnp.zeros(target.shape, jnp.int32))
    return fold_states(num_candidates, candidate, init)[1]


def inverse_cdf(weights: Array, u: Array) -> Array:
    """`inverse_cdf_rows` for weights given as an array `(..., K, J)`."""
    k = weights.shape[-2]
    return inverse_cdf_rows(lambda i: weights[..., i, :], k, jnp.sum(weights, axis=-2), u)
