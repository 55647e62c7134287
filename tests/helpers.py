"""Shared test helpers: the methods every test runs over, and tree comparisons."""

import jax
import jax.numpy as jnp
import numpy as np

import scanalg

all_methods = (
    scanalg.Sequential(),
    scanalg.Parallel(),
    scanalg.Blocked(),
    scanalg.Blocked(block_size=3, outer=scanalg.Parallel()),
    scanalg.Auto(),
)

method_ids = [repr(m) for m in all_methods]


def tree_allclose(x, y, *, rtol=1e-10, atol=1e-10, equal_nan=False) -> bool:
    """Same structure and every leaf close (exact for integer leaves)."""
    if jax.tree.structure(x) != jax.tree.structure(y):
        return False
    for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return False
        if np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
            if not np.array_equal(a, b):
                return False
        elif not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan):
            return False
    return True


def tree_max_error(x, y) -> float:
    """Largest absolute difference over all leaves."""
    diffs = jax.tree.map(
        lambda a, b: jnp.max(jnp.abs(jnp.asarray(a) - jnp.asarray(b)), initial=0), x, y
    )
    return float(max(jax.tree.leaves(diffs), default=0.0))
