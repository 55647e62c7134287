"""Shared argument checks (no family owns them)."""

import functools
import inspect
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike


def float_dtype(*arrays, family: str = "HMM"):
    """The common floating dtype of `arrays` (the default float for integers); a
    `TypeError` for complex input."""
    dtype = jnp.result_type(*arrays)
    if not jnp.issubdtype(dtype, jnp.inexact):
        dtype = jnp.result_type(float)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise TypeError(f"{family} inputs must be real, got a complex dtype.")
    return dtype


def sum_to_one_tolerance(dtype, size: int) -> float:
    r"""How far from one the sum of `size` probabilities may be: $\sqrt{K\epsilon}$ in
    the dtype's own precision, or $2K\epsilon_{32}$, whichever is larger. The second
    is twice the rounding of a normalisation in float32, so probabilities made in
    float32 and then cast to float64 are accepted."""
    k = max(1, size)
    own = (float(jnp.finfo(dtype).eps) * k) ** 0.5
    return max(own, 2 * k * float(jnp.finfo(jnp.float32).eps))


def distribution_problem(x: Array) -> Array:
    """True unless the last axis of `x` holds probability vectors (nonnegative, no
    NaN, summing to one within `sum_to_one_tolerance`)."""
    tol = sum_to_one_tolerance(x.dtype, x.shape[-1])
    bad_sign = jnp.any(x < 0) | jnp.any(jnp.isnan(x))
    return bad_sign | jnp.any(jnp.abs(jnp.sum(x, axis=-1) - 1) > tol)


def nan_or_positive_infinity(x: Array) -> Array:
    """True if `x` has a NaN or a $+\\infty$ ($-\\infty$ is allowed): one max-reduction
    (NaN propagates through it), with no boolean array the size of `x`."""
    return ~(jnp.max(x, initial=-jnp.inf) < jnp.inf)


def positive_count(value, name: str) -> int:
    """`value` as an `int` if it is a whole number >= 1: a `TypeError` naming `name` for
    anything else that is not an integer (a bool included: `True` is not a count), a
    `ValueError` for one below one."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int >= 1, got {value!r}.")
    if value < 1:
        raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
    return int(value)


def nonfinite(x: Array) -> Array:
    """True if `x` has a NaN or an infinite entry."""
    return ~jnp.all(jnp.isfinite(x))


def asymmetric(x: Array) -> Array:
    """True unless the (batch of) square matrices `x` is symmetric up to rounding
    (entries within 1000 ulps of the largest)."""
    tol = 1000 * jnp.finfo(x.dtype).eps
    scale = jnp.max(jnp.abs(x), initial=0)
    return jnp.max(jnp.abs(x - jnp.swapaxes(x, -1, -2)), initial=0) > tol * scale


def _flags(checks: Sequence[tuple[ArrayLike, str]]) -> Array:
    return jnp.stack([jnp.asarray(b) for b, _ in checks])


def any_failed(checks: Sequence[tuple[ArrayLike, str]]) -> Array:
    """Whether any `(bad, message)` of `checks` fails (a scalar boolean array)."""
    return jnp.any(_flags(checks))


def attach_checks(x: Array, checks: Sequence[tuple[ArrayLike, str]]) -> Array:
    """`x` (a numeric array) with one `equinox.error_if` for all `(bad, message)` in
    `checks`: the first failing check is the one reported. Tie them to an array that
    every output depends on (a check whose result is unused is dropped). Checks
    attached in different places may run in any order: a check that only makes sense
    once others pass should include their negation (`~any_failed(others)`) in its
    `bad`.

    The check rides on a scalar zero subtracted from `x`, not on `x` itself: what
    passes through `error_if` is placed on one device, so an `x` split over devices
    (e.g. along time, see `scanalg.Sharded`) would be gathered there whole. The
    subtraction changes no value (signed zeros included; subnormals are flushed to
    zero, as by any later XLA arithmetic)."""
    if not checks:
        return x
    bad = _flags(checks)
    zero = jnp.zeros((), x.dtype)
    zero = eqx.branched_error_if(zero, jnp.any(bad), jnp.argmax(bad), [m for _, m in checks])
    return x - zero


def checks_arguments(check: Callable[[dict[str, Any]], None]) -> Callable[[Callable], Callable]:
    """A decorator: `check(arguments)` runs on a call's bound arguments (a dict by name,
    which `check` may update: a checked `lengths`, say) before the decorated function,
    and so before any runtime type checker or `jit` on it. Every family's public
    functions raise their shape errors this way (a `ValueError` naming the argument and
    the shape it needs, at trace time), with or without a type checker."""

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            check(bound.arguments)
            return fn(*bound.args, **bound.kwargs)

        return wrapper

    return decorate
