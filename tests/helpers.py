"""Shared test helpers: the methods and basic monoids every test runs over, their
test inputs, a plain Python left fold to compare with, and tree comparisons."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

import scanalg
from scanalg import monoids as M

# The four in-process CPU devices (see conftest.py) on a time axis. `Auto` axes (as
# `jax.sharding.Mesh` makes them): tests/test_sharded.py covers `Explicit` ones.
mesh = jax.make_mesh((4,), ("time",), axis_types=(jax.sharding.AxisType.Auto,))

all_methods = (
    scanalg.Sequential(),
    scanalg.Parallel(),
    scanalg.Parallel(algorithm="associative_scan"),
    scanalg.Blocked(),
    scanalg.Blocked(block_size=3, outer=scanalg.Parallel()),
    scanalg.Sharded(mesh, "time", local_reduce=scanalg.Sequential()),
)
# (`Auto()` is not among them: it runs one of these, and tests/test_scan.py checks
# which; tests/test_conformance.py runs the battery through it. `Sharded` reduces each
# device's chunk with a loop here: its default `local_reduce=Blocked()` doubles what
# XLA's partitioner works through, and a Sharded program already compiles several
# times slower than the others. The default `Sharded` runs in tests/test_sharded.py,
# over every basic monoid, and in the ported dynamax suites.)


# One method per algorithm (a loop, a parallel scan, small blocks scanned in parallel),
# for tests that compile every method again for each drawn case (`check_laws`) or
# run a whole model pipeline per method: there all of `all_methods` would multiply
# the cost, and the other methods agree with these by the tests over `all_methods`.
core_methods = (
    scanalg.Sequential(),
    scanalg.Parallel(),
    scanalg.Blocked(block_size=2, outer=scanalg.Parallel()),
)


def method_id(method: scanalg.AbstractScanMethod) -> str:
    """A short test id: the repr on one line, without the mesh."""
    if isinstance(method, scanalg.Sharded):
        return f"Sharded({method.num_devices})"
    return repr(method)


method_ids = [method_id(m) for m in all_methods]


def _orthogonal(rng, n, size):
    q, _ = np.linalg.qr(rng.normal(size=(size, n, n)))
    return q


all_monoids = {
    "Sum": M.Sum(),
    "Product": M.Product(),
    "Max": M.Max(),
    "Min": M.Min(),
    "LogAddExp": M.LogAddExp(),
    "MatMul": M.MatMul(),
    "Affine": M.Affine(),
    "FiniteFunction": M.FiniteFunction(),
}
# Integer-valued monoids: every method gives bit-identical answers.
EXACT = ("Max", "Min", "FiniteFunction")
NON_COMMUTATIVE = ("MatMul", "Affine", "FiniteFunction")


def make_elems(name, n, seed=0):
    """`n` inputs for `all_monoids[name]` (float64, or int32 for the exact ones)."""
    rng = np.random.default_rng(seed)
    if name == "Sum":
        return jnp.asarray(rng.normal(size=(n, 2)))
    if name == "Product":
        return jnp.asarray(rng.uniform(0.9, 1.1, size=(n,)))
    if name in ("Max", "Min"):
        return jnp.asarray(rng.integers(-100, 100, size=(n, 3)), dtype=jnp.int32)
    if name == "LogAddExp":
        return jnp.asarray(rng.normal(size=(n, 2)) * 3)
    if name == "MatMul":
        return jnp.asarray(_orthogonal(rng, 3, n))
    if name == "Affine":
        return jnp.asarray(0.95 * _orthogonal(rng, 3, n)), jnp.asarray(rng.normal(size=(n, 3)))
    if name == "FiniteFunction":
        return jnp.asarray(rng.integers(0, 5, size=(n, 5)), dtype=jnp.int32)
    raise ValueError(name)


def make_init(name):
    """An initial state for `all_monoids[name]`."""
    if name in ("Sum", "LogAddExp"):
        return jnp.array([0.5, -1.0])
    if name == "Product":
        return jnp.array(2.0)
    if name in ("Max", "Min"):
        return jnp.array([3, -7, 50], dtype=jnp.int32)
    if name in ("MatMul", "Affine"):
        return jnp.array([1.0, -2.0, 0.5])
    if name == "FiniteFunction":
        return jnp.array(3, dtype=jnp.int32)
    raise ValueError(name)


def variants(name):
    """The `(reverse, exclusive, with_init)` cases `all_monoids[name]` supports."""
    direction = all_monoids[name].action_direction
    out = []
    for reverse in (False, True):
        for exclusive in (False, True):
            out.append((reverse, exclusive, False))
            if direction in ("both", "reverse" if reverse else "forward"):
                out.append((reverse, exclusive, True))
    return out


def _at(elems, t):
    return jax.tree.map(lambda x: x[t], elems)


@functools.cache
def _jitted(name):
    """`combine` and `act` of a monoid, jitted once (compiled once per shape)."""
    monoid = all_monoids[name]
    return jax.jit(monoid.combine), jax.jit(monoid.act)


@functools.cache
def reference(name, n, reverse, exclusive, with_init, seed=0):
    """A plain Python left fold over `make_elems(name, n, seed)`, one element at a time
    (host arrays: each step is one dispatch of the jitted `combine` or `act`)."""
    monoid = all_monoids[name]
    elems = jax.tree.map(np.asarray, make_elems(name, n, seed))
    combine, act = _jitted(name)
    if with_init:
        carry, step = make_init(name), act
    else:
        carry = monoid.identity(jax.tree.map(lambda x: jnp.zeros(x.shape[1:], x.dtype), elems))
        step = (lambda c, x: combine(x, c)) if reverse else combine
    out = [None] * n
    for t in range(n - 1, -1, -1) if reverse else range(n):
        new = step(carry, _at(elems, t))
        out[t], carry = (carry if exclusive else new), new
    if n == 0:
        like = jax.tree.map(lambda x: x[None], make_init(name)) if with_init else elems
        return jax.tree.map(lambda x: np.asarray(x)[:0], like)
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *out)


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
