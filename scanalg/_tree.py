"""Small pytree helpers shared by the executor and the law checker."""

import math
from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any


def like_element(elems: PyTree) -> PyTree:
    """Zeros with the structure, shapes and dtypes of one element of `elems`."""
    return jax.tree.map(lambda x: jnp.zeros(x.shape[1:], x.dtype), elems)


def size(tree: PyTree) -> int:
    """The number of scalars in a pytree of arrays (or shape-dtype structures)."""
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def stack_one(element: PyTree) -> PyTree:
    """Add a leading axis of length one."""
    return jax.tree.map(lambda x: x[None], element)


def concat(a: PyTree, b: PyTree) -> PyTree:
    """Concatenate two sequences of elements along time."""
    return jax.tree.map(lambda x, y: jnp.concatenate([x, y], axis=0), a, b)


def time_slice(elems: PyTree, start: int, stop: int) -> PyTree:
    """Elements `start:stop` along time."""
    return jax.tree.map(lambda x: x[start:stop], elems)


def index(elems: PyTree, i: int) -> PyTree:
    """Element `i` along time."""
    return jax.tree.map(lambda x: x[i], elems)


def repeat(element: PyTree, n: int) -> PyTree:
    """`n` copies of a single element, stacked along a new leading axis."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), element)


def reshape_blocks(elems: PyTree, num_blocks: int, block_size: int) -> PyTree:
    """Split a sequence of length `num_blocks * block_size` into blocks."""
    return jax.tree.map(lambda x: x.reshape(num_blocks, block_size, *x.shape[1:]), elems)


def merge_blocks(elems: PyTree) -> PyTree:
    """Inverse of `reshape_blocks`."""
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), elems)


def describe(tree: PyTree) -> str:
    """A short printable description of a pytree's structure, shapes and dtypes."""
    leaves, treedef = jax.tree.flatten(tree)
    shapes = ", ".join(f"{jnp.dtype(x.dtype).name}{list(x.shape)}" for x in leaves)
    return f"{treedef} with leaves ({shapes})"
