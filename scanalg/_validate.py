"""Shared argument checks (no family owns them)."""

import jax.numpy as jnp
from jaxtyping import Array


def float_dtype(*arrays, family: str = "HMM"):
    """The common floating dtype of `arrays` (the default float for integers); a
    `TypeError` for complex input."""
    dtype = jnp.result_type(*arrays)
    if not jnp.issubdtype(dtype, jnp.inexact):
        dtype = jnp.result_type(float)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise TypeError(f"{family} inputs must be real, got a complex dtype.")
    return dtype


def distribution_problem(x: Array) -> Array:
    """True unless the last axis of `x` holds probability vectors (nonnegative, no
    NaN, summing to one up to a dtype-aware tolerance)."""
    tol = jnp.sqrt(jnp.finfo(x.dtype).eps) * max(1, x.shape[-1]) ** 0.5
    bad_sign = jnp.any(x < 0) | jnp.any(jnp.isnan(x))
    return bad_sign | jnp.any(jnp.abs(jnp.sum(x, axis=-1) - 1) > tol)
