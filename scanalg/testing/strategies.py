r"""Hypothesis strategies for the elements and states of the built-in monoids.

Use them with `scanalg.check_laws`, or build strategies for your own monoids from
them. Every strategy draws NumPy arrays of one fixed shape and dtype, with values in
ranges where floating-point tolerances are meaningful (e.g. matrices of spectral
norm at most one, so long products neither explode nor lose all precision).

Valid elements that are hard to draw directly are built *operationally*, as
products of simple base elements (`products`): a matrix of bounded norm and
condition is a product of rotations, permutations and bounded diagonal scalings,
just as a stochastic matrix is a product of simple stochastic ones.

This module needs Hypothesis (in the `test` extra); `import scanalg` does not
import it.

| monoid | elements | states (for `act`) |
|---|---|---|
| `Sum` | `sum_elements` | `sum_elements` |
| `Product` | `product_elements` | `product_elements` |
| `Max` | `max_elements` | `max_elements` |
| `Min` | `min_elements` | `min_elements` |
| `LogAddExp` | `logaddexp_elements` | `logaddexp_elements` |
| `MatMul` | `matmul_elements` | `matmul_states` |
| `Affine` | `affine_elements` | `affine_states` |
| `FiniteFunction` | `finite_functions` | `finite_function_states` |
"""

import functools
import math
from collections.abc import Callable
from typing import Any

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import numpy as np

PyTree = Any
# (`tuple`, not `tuple[int, ...]`: a runtime type checker would sample the tuple with
# `random`, which Hypothesis forbids inside strategies.)
Shape = int | tuple
Real = int | float  # bounds may be given as ints

__all__ = [
    "affine_elements",
    "affine_states",
    "arrays",
    "diagonal_matrices",
    "finite_function_states",
    "finite_functions",
    "givens_rotations",
    "logaddexp_elements",
    "matmul_elements",
    "matmul_states",
    "max_elements",
    "min_elements",
    "permutation_matrices",
    "product_elements",
    "products",
    "sequences",
    "sum_elements",
]


def _shape(shape: Shape) -> tuple:
    return (shape,) if isinstance(shape, int) else tuple(shape)


def _scalars(dtype: np.dtype, min_value, max_value, allow_infinity: bool) -> st.SearchStrategy:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        lo = info.min if min_value is None else max(int(math.ceil(min_value)), info.min)
        hi = info.max if max_value is None else min(int(math.floor(max_value)), info.max)
        return st.integers(lo, hi)
    if np.issubdtype(dtype, np.floating):
        return hnp.from_dtype(
            dtype,
            min_value=min_value,
            max_value=max_value,
            allow_nan=False,
            allow_infinity=allow_infinity,
            allow_subnormal=False,
        )
    if dtype == np.bool_:
        return st.booleans()
    raise TypeError(f"No strategy for dtype {dtype}; use an integer, floating or bool dtype.")


def arrays(
    shape: Shape = (),
    dtype: Any = np.float64,
    *,
    min_value: Real | None = None,
    max_value: Real | None = None,
    allow_infinity: bool = False,
    extra: st.SearchStrategy | None = None,
) -> st.SearchStrategy[np.ndarray]:
    r"""Arrays of a fixed shape and dtype with values in `[min_value, max_value]`.

    **Arguments:**

    - `shape`, `dtype`: of the arrays (integer, floating or bool dtypes).
    - `min_value`, `max_value`: bounds of the values (`None`: unbounded).
    - `allow_infinity`: allow $\pm\infty$ (floating dtypes, no bounds).
    - `extra`: a strategy for further special values to mix in (e.g. `st.just(-inf)`).

    **Returns:**

    A strategy of `np.ndarray`. NaN and subnormal numbers are never drawn.
    """
    dtype = np.dtype(dtype)
    values = _scalars(dtype, min_value, max_value, allow_infinity)
    if extra is not None:
        values = st.one_of(values, extra)
    return hnp.arrays(dtype, _shape(shape), elements=values)


def sum_elements(
    shape: Shape = (), dtype: Any = np.float64, *, bound: Real = 10.0
) -> st.SearchStrategy[np.ndarray]:
    r"""Elements (and states) of `Sum`: arrays with values in `[-bound, bound]`.

    **Arguments:**

    - `shape`, `dtype`: of the arrays.
    - `bound`: the largest magnitude of a value.

    **Returns:**

    A strategy of `np.ndarray` of shape `shape`.
    """
    return arrays(shape, dtype, min_value=-bound, max_value=bound)


def product_elements(
    shape: Shape = (), dtype: Any = np.float64, *, bound: Real = 2.0
) -> st.SearchStrategy[np.ndarray]:
    r"""Elements (and states) of `Product`: arrays with values in `[-bound, bound]`.

    A small `bound` keeps products of many elements representable.

    **Arguments:**

    - `shape`, `dtype`: of the arrays.
    - `bound`: the largest magnitude of a value.

    **Returns:**

    A strategy of `np.ndarray` of shape `shape`.
    """
    return arrays(shape, dtype, min_value=-bound, max_value=bound)


def max_elements(
    shape: Shape = (), dtype: Any = np.float64, *, allow_infinity: bool = True
) -> st.SearchStrategy[np.ndarray]:
    r"""Elements (and states) of `Max`: any values, including $\pm\infty$.

    `Max` is exact, so no range needs to be excluded.

    **Arguments:**

    - `shape`, `dtype`: of the arrays.
    - `allow_infinity`: also draw $\pm\infty$ (floating dtypes).

    **Returns:**

    A strategy of `np.ndarray` of shape `shape`.
    """
    return arrays(shape, dtype, allow_infinity=allow_infinity)


def min_elements(
    shape: Shape = (), dtype: Any = np.float64, *, allow_infinity: bool = True
) -> st.SearchStrategy[np.ndarray]:
    r"""Elements (and states) of `Min`: any values, including $\pm\infty$.

    **Arguments:**

    - `shape`, `dtype`: of the arrays.
    - `allow_infinity`: also draw $\pm\infty$ (floating dtypes).

    **Returns:**

    A strategy of `np.ndarray` of shape `shape`.
    """
    return arrays(shape, dtype, allow_infinity=allow_infinity)


def logaddexp_elements(
    shape: Shape = (),
    dtype: Any = np.float64,
    *,
    bound: Real = 30.0,
    allow_neg_infinity: bool = True,
) -> st.SearchStrategy[np.ndarray]:
    r"""Elements (and states) of `LogAddExp`: log-weights in `[-bound, bound]`, and
    optionally $-\infty$ (weight zero).

    **Arguments:**

    - `shape`, `dtype`: of the arrays (a floating dtype).
    - `bound`: the largest magnitude of a finite log-weight.
    - `allow_neg_infinity`: also draw $-\infty$.

    **Returns:**

    A strategy of `np.ndarray` of shape `shape`.
    """
    extra = st.just(-np.inf) if allow_neg_infinity else None
    return arrays(shape, dtype, min_value=-bound, max_value=bound, extra=extra)


# ------------------------------------------------------------ operational generation


def products(
    combine: Callable[[PyTree, PyTree], PyTree],
    base: st.SearchStrategy,
    *,
    min_factors: int = 1,
    max_factors: int = 4,
) -> st.SearchStrategy:
    r"""Elements built as products $b_1 \otimes \cdots \otimes b_k$ of base elements.

    Valid elements that are hard to draw directly (well-conditioned matrices,
    stochastic matrices, covariances) are easy to build from simple ones that are
    valid by construction, as long as the product preserves validity. Hypothesis
    shrinks towards fewer and simpler factors.

    **Arguments:**

    - `combine`: a function of two elements, e.g. `np.matmul` or a monoid's `combine`
      (whose results are converted to NumPy).
    - `base`: a strategy for the base elements.
    - `min_factors`, `max_factors`: the range of $k$.

    **Returns:**

    A strategy of products of $k$ base elements.
    """
    if not 1 <= min_factors <= max_factors:
        raise ValueError(f"Need 1 <= min_factors <= max_factors, got {min_factors}, {max_factors}.")

    def multiply(factors):
        return jax.tree.map(np.asarray, functools.reduce(combine, factors))

    return st.lists(base, min_size=min_factors, max_size=max_factors).map(multiply)


def givens_rotations(n: int, dtype: Any = np.float64) -> st.SearchStrategy[np.ndarray]:
    r"""Rotations by an angle $\theta \in [-\pi, \pi]$ in a coordinate plane of
    $\mathbb{R}^n$.

    **Arguments:**

    - `n`: the matrix size.
    - `dtype`: a floating dtype.

    **Returns:**

    A strategy of orthogonal $n\times n$ matrices (`np.ndarray`): the identity except
    for the entries $(i, i), (i, j), (j, i), (j, j)$, which are
    $\cos\theta, -\sin\theta, \sin\theta, \cos\theta$. For $n < 2$, always the identity.
    """
    dtype = np.dtype(dtype)
    if n < 2:
        return st.just(np.eye(n, dtype=dtype))

    @st.composite
    def draw(draw):
        i = draw(st.integers(0, n - 2))
        j = draw(st.integers(i + 1, n - 1))
        theta = draw(st.floats(-math.pi, math.pi))
        out = np.eye(n)
        c, s = math.cos(theta), math.sin(theta)
        out[i, i] = out[j, j] = c
        out[i, j], out[j, i] = -s, s
        return out.astype(dtype)

    return draw()


def diagonal_matrices(
    n: int, dtype: Any = np.float64, *, min_abs: Real = 0.0, max_abs: Real = 1.0
) -> st.SearchStrategy[np.ndarray]:
    r"""Diagonal matrices with entries of magnitude in `[min_abs, max_abs]` and
    either sign.

    **Arguments:**

    - `n`: the matrix size.
    - `dtype`: a floating dtype.
    - `min_abs`, `max_abs`: the range of the magnitudes of the diagonal entries.

    **Returns:**

    A strategy of diagonal $n\times n$ matrices (`np.ndarray`).
    """
    dtype = np.dtype(dtype)
    magnitude = st.floats(min_abs, max_abs, allow_subnormal=False)
    entry = st.tuples(st.booleans(), magnitude).map(lambda p: -p[1] if p[0] else p[1])
    return st.lists(entry, min_size=n, max_size=n).map(lambda d: np.diag(d).astype(dtype))


def permutation_matrices(n: int, dtype: Any = np.float64) -> st.SearchStrategy[np.ndarray]:
    r"""Permutation matrices: the identity with its rows permuted.

    **Arguments:**

    - `n`: the matrix size.
    - `dtype`: of the matrices.

    **Returns:**

    A strategy of $n\times n$ matrices (`np.ndarray`) with a single one in each row and
    column and zeros elsewhere.
    """
    dtype = np.dtype(dtype)
    return st.permutations(range(n)).map(lambda p: np.eye(n, dtype=dtype)[list(p)])


def matmul_elements(
    n: int = 3,
    dtype: Any = np.float64,
    *,
    max_factors: int = 4,
    min_singular_value: Real = 0.0,
) -> st.SearchStrategy[np.ndarray]:
    r"""Elements of `MatMul`: $n\times n$ matrices of spectral norm at most one.

    Built as products of up to `max_factors` rotations, permutations and diagonal
    scalings (an SVD-like construction), so every singular value lies in
    $[\sigma_{\min}, 1]$ with $\sigma_{\min}$ = `min_singular_value`: with
    $\sigma_{\min} > 0$ the matrices are invertible with condition number at most
    $1/\sigma_{\min}$. The default $\sigma_{\min} = 0$ also draws singular matrices.

    **Arguments:**

    - `n`: the matrix size.
    - `dtype`: a floating dtype (the products are computed in float64, then cast).
    - `max_factors`: the most base matrices in a product.
    - `min_singular_value`: a lower bound $\sigma_{\min} \in [0, 1]$ on the singular
      values (`ValueError` outside that range).

    **Returns:**

    A strategy of $n\times n$ matrices (`np.ndarray`).
    """
    if not 0.0 <= min_singular_value <= 1.0:
        raise ValueError(f"min_singular_value must lie in [0, 1], got {min_singular_value}.")
    dtype = np.dtype(dtype)
    min_abs = min_singular_value ** (1.0 / max_factors)
    base = st.one_of(
        diagonal_matrices(n, np.float64, min_abs=min_abs),
        givens_rotations(n, np.float64),
        permutation_matrices(n, np.float64),
    )
    return products(np.matmul, base, max_factors=max_factors).map(lambda a: a.astype(dtype))


def matmul_states(
    n: int = 3, dtype: Any = np.float64, *, batch_shape: Shape = (), bound: Real = 1.0
) -> st.SearchStrategy[np.ndarray]:
    r"""States of `MatMul`: row vectors, or stacks of them, with entries in
    `[-bound, bound]`.

    **Arguments:**

    - `n`: the vector length (the matrix size of the elements).
    - `dtype`: a floating dtype.
    - `batch_shape`: the shape of the stack of row vectors (`()`: one vector).
    - `bound`: the largest magnitude of an entry.

    **Returns:**

    A strategy of `np.ndarray` of shape `(*batch_shape, n)`.
    """
    return arrays((*_shape(batch_shape), n), dtype, min_value=-bound, max_value=bound)


def affine_elements(
    n: int = 3,
    dtype: Any = np.float64,
    *,
    max_factors: int = 4,
    min_singular_value: Real = 0.0,
    bound: Real = 1.0,
) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
    r"""Elements `(A, b)` of `Affine`, the maps $x \mapsto A x + b$.

    `A` comes from `matmul_elements` (spectral norm at most one, so the recurrence
    stays bounded) and `b` has entries in `[-bound, bound]`.

    **Arguments:**

    - `n`: the dimension of $x$.
    - `dtype`: a floating dtype.
    - `max_factors`, `min_singular_value`: for `A`, as for `matmul_elements`.
    - `bound`: the largest magnitude of an entry of `b`.

    **Returns:**

    A strategy of tuples `(A, b)` of `np.ndarray`s of shapes `(n, n)` and `(n,)`.
    """
    return st.tuples(
        matmul_elements(n, dtype, max_factors=max_factors, min_singular_value=min_singular_value),
        arrays((n,), dtype, min_value=-bound, max_value=bound),
    )


def affine_states(
    n: int = 3, dtype: Any = np.float64, *, bound: Real = 1.0
) -> st.SearchStrategy[np.ndarray]:
    r"""States of `Affine`: vectors $x$ with entries in `[-bound, bound]`.

    **Arguments:**

    - `n`: the vector length.
    - `dtype`: a floating dtype.
    - `bound`: the largest magnitude of an entry.

    **Returns:**

    A strategy of `np.ndarray` of shape `(n,)`.
    """
    return arrays((n,), dtype, min_value=-bound, max_value=bound)


def finite_functions(K: int = 5, dtype: Any = np.int32) -> st.SearchStrategy[np.ndarray]:
    r"""Elements of `FiniteFunction`: maps $[K] \to [K]$ as integer arrays $f$ with
    $f[j]$ the image of $j$.

    Half arbitrary maps, half permutations (bijections), which a uniform draw would
    rarely give.

    **Arguments:**

    - `K`: the size of the set $[K] = \{0, \dots, K-1\}$, at least 1 (`ValueError`
      otherwise).
    - `dtype`: an integer dtype.

    **Returns:**

    A strategy of `np.ndarray` of shape `(K,)` with values in `[0, K)`.
    """
    dtype = np.dtype(dtype)
    if K < 1:
        raise ValueError(f"K must be at least 1, got {K}.")
    maps = arrays((K,), dtype, min_value=0, max_value=K - 1)
    perms = st.permutations(range(K)).map(lambda p: np.asarray(p, dtype=dtype))
    return st.one_of(maps, perms)


def finite_function_states(
    K: int = 5, shape: Shape = (), dtype: Any = np.int32
) -> st.SearchStrategy[np.ndarray]:
    r"""States of `FiniteFunction`: points of $[K]$, as integer arrays of values in
    `[0, K)`.

    **Arguments:**

    - `K`: the size of the set $[K]$.
    - `shape`: the shape of the array of points (`()`: a single point).
    - `dtype`: an integer dtype.

    **Returns:**

    A strategy of `np.ndarray` of shape `shape`.
    """
    return arrays(shape, dtype, min_value=0, max_value=K - 1)


def sequences(
    elements: st.SearchStrategy, *, min_length: int = 0, max_length: int = 8
) -> st.SearchStrategy[PyTree]:
    r"""Sequences of elements stacked along a new leading time axis, as `scan` takes them.

    **Arguments:**

    - `elements`: a strategy for single elements (one fixed structure and shape).
    - `min_length`, `max_length`: the range of the length $T$ (which may be zero).

    **Returns:**

    A strategy of pytrees whose leaves have shape `(T, *element_shape)`.
    """

    def stack(drawn):
        like, items = drawn
        if not items:
            return jax.tree.map(lambda x: np.zeros((0, *np.shape(x)), np.asarray(x).dtype), like)
        return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *items)

    return st.tuples(elements, st.lists(elements, min_size=min_length, max_size=max_length)).map(
        stack
    )


# ------------------------------------------------------ combinators, DiagonalAffine
#
# | monoid | elements | states (for `act`) |
# |---|---|---|
# | `Pair(m1, m2)` | `pair_elements(e1, e2)` | `pair_elements(s1, s2)` |
# | `Struct(monoids)` | `struct_elements(...)` | `struct_elements(...)` |
# | `Dual(m)` | the elements of `m` | the states of `m` |
# | `Segmented(m, reset=...)` | `segmented_elements(e)` | the states of `m` |
# | `Masked(m)` | `masked_elements(e)` | the states of `m` |
# | `DiagonalAffine` | `diagonal_affine_elements` | `diagonal_affine_states` |

__all__ += [
    "diagonal_affine_elements",
    "diagonal_affine_states",
    "flags",
    "masked_elements",
    "pair_elements",
    "segmented_elements",
    "struct_elements",
]


def flags() -> st.SearchStrategy[np.ndarray]:
    r"""Scalar boolean arrays: the segment and validity flags of `Segmented` and
    `Masked` elements.

    **Arguments:** none.

    **Returns:**

    A strategy of `np.ndarray` of shape `()` and dtype `bool`.
    """
    return arrays((), np.bool_)


def pair_elements(first: st.SearchStrategy, second: st.SearchStrategy) -> st.SearchStrategy:
    r"""Elements (or states) `(x1, x2)` of `Pair(m1, m2)`.

    **Arguments:**

    - `first`: a strategy for the elements (or states) of `m1`.
    - `second`: a strategy for the elements (or states) of `m2`.

    **Returns:**

    A strategy of tuples `(x1, x2)`.
    """
    return st.tuples(first, second)


def struct_elements(strategies: PyTree) -> st.SearchStrategy[PyTree]:
    r"""Elements (or states) of `Struct(monoids)`: a pytree of strategies turned into
    a strategy of pytrees.

    **Arguments:**

    - `strategies`: a pytree of strategies with the container structure of `monoids`,
      e.g. `{"a": sum_elements(), "b": [max_elements()]}` for
      `Struct({"a": Sum(), "b": [Max()]})`. Every leaf must be a strategy
      (`TypeError` otherwise).

    **Returns:**

    A strategy of pytrees of that structure, each leaf drawn from its strategy.
    """
    leaves, treedef = jax.tree.flatten(
        strategies, is_leaf=lambda x: isinstance(x, st.SearchStrategy)
    )
    for leaf in leaves:
        if not isinstance(leaf, st.SearchStrategy):
            raise TypeError(f"struct_elements needs a pytree of strategies, got a leaf {leaf!r}.")
    return st.tuples(*leaves).map(lambda drawn: jax.tree.unflatten(treedef, drawn))


def segmented_elements(elements: st.SearchStrategy) -> st.SearchStrategy:
    r"""Elements `(flag, x)` of `Segmented(m)`.

    **Arguments:**

    - `elements`: a strategy for the elements $x$ of `m`.

    **Returns:**

    A strategy of tuples `(flag, x)`: `flag` a scalar boolean array (see `flags`), `x`
    drawn from `elements`.
    """
    return st.tuples(flags(), elements)


def masked_elements(elements: st.SearchStrategy) -> st.SearchStrategy:
    r"""Elements `(valid, x)` of `Masked(m)`.

    Invalid elements carry ordinary values from `elements`, which the laws then prove
    are ignored.

    **Arguments:**

    - `elements`: a strategy for the elements $x$ of `m`.

    **Returns:**

    A strategy of tuples `(valid, x)`: `valid` a scalar boolean array (see `flags`),
    `x` drawn from `elements`.
    """
    return st.tuples(flags(), elements)


def _inexact_arrays(shape: Shape, dtype: Any, bound: Real) -> st.SearchStrategy[np.ndarray]:
    """Real arrays in `[-bound, bound]`, or complex ones with real and imaginary parts
    there (`arrays` draws no complex numbers)."""
    dtype = np.dtype(dtype)
    real = np.finfo(dtype).dtype
    bound = float(np.asarray(bound, real))  # exactly representable in the dtype
    if not np.issubdtype(dtype, np.complexfloating):
        return arrays(shape, dtype, min_value=-bound, max_value=bound)
    part = arrays(shape, real, min_value=-bound, max_value=bound)
    return st.tuples(part, part).map(lambda p: (p[0] + 1j * p[1]).astype(dtype))


def diagonal_affine_elements(
    n: int = 3, dtype: Any = np.float64, *, bound: Real = 1.0
) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
    r"""Elements `(a, b)` of `DiagonalAffine`, the maps $h \mapsto a \odot h + b$,
    with $|a_i| \le 1$ so that the recurrence stays bounded.

    Real decays $a$ lie in $[-1, 1]$; complex ones have real and imaginary parts in
    $[-0.7, 0.7]$ (so $|a_i| < 1$). The inputs $b$ have entries (real and imaginary
    parts) in `[-bound, bound]`.

    **Arguments:**

    - `n`: the state dimension.
    - `dtype`: a real or complex floating dtype.
    - `bound`: the largest magnitude of (the real and imaginary parts of) an entry of
      $b$.

    **Returns:**

    A strategy of tuples `(a, b)` of `np.ndarray`s of shape `(n,)`.
    """
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.complexfloating):
        decay = _inexact_arrays((n,), dtype, 0.7)  # |a| < 1
    else:
        decay = _inexact_arrays((n,), dtype, 1.0)
    return st.tuples(decay, _inexact_arrays((n,), dtype, bound))


def diagonal_affine_states(
    n: int = 3, dtype: Any = np.float64, *, bound: Real = 1.0
) -> st.SearchStrategy[np.ndarray]:
    r"""States $h$ of `DiagonalAffine`: vectors with entries (real and imaginary
    parts) in `[-bound, bound]`.

    **Arguments:**

    - `n`: the state dimension.
    - `dtype`: a real or complex floating dtype.
    - `bound`: the largest magnitude of (the real and imaginary parts of) an entry.

    **Returns:**

    A strategy of `np.ndarray` of shape `(n,)`.
    """
    return _inexact_arrays((n,), dtype, bound)


# Semirings (scanalg.semirings): values, the semiring laws and their checker.
from ._semiring_strategies import *  # noqa: E402, F403
from ._semiring_strategies import __all__ as _semiring_all  # noqa: E402

__all__ += _semiring_all
