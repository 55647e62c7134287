r"""Hypothesis strategies for semiring values, and the semiring laws for `check_laws`.

A semiring's laws are checked by the same checker as a monoid's: its $\oplus$ and
$\otimes$ are monoids (`SemiringPlus`, `SemiringTimes`), checked by
`scanalg.check_laws` for associativity, identities and scan-agrees-with-fold, together
with the laws that tie them together (`commutativity`, `left_distributivity`,
`right_distributivity`, `annihilation`), written as `scanalg.laws.Law` objects. The
matrix monoid `scanalg.semirings.SemiringMatMul` is checked by `check_laws` itself,
with `semiring_matrices` and `semiring_vectors`.

This module needs Hypothesis (in the `test` extra).
"""

from collections.abc import Sequence
from typing import Any

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np

from .._monoid import AbstractMonoid
from ..laws import (
    Law,
    associativity,
    check_laws,
    left_identity,
    right_identity,
    scan_agrees_with_fold as _scan_agrees_with_fold,
)
from ..semirings import AbstractSemiring, Entropy, KMax, Log, Max, Std

__all__ = [
    "SemiringPlus",
    "SemiringTimes",
    "annihilation",
    "check_semiring_laws",
    "commutativity",
    "left_distributivity",
    "right_distributivity",
    "semiring_laws",
    "semiring_matrices",
    "semiring_values",
    "semiring_vectors",
]

Shape = int | tuple[int, ...]


def _shape(shape: Shape) -> tuple[int, ...]:
    return (shape,) if isinstance(shape, int) else tuple(shape)


def _scores(shape, dtype, bound: float, zeros: bool) -> st.SearchStrategy[np.ndarray]:
    values = hnp.from_dtype(
        np.dtype(dtype), min_value=-bound, max_value=bound, allow_nan=False, allow_subnormal=False
    )
    if zeros:
        values = st.one_of(values, st.just(-np.inf))
    return hnp.arrays(np.dtype(dtype), shape, elements=values)


def semiring_values(
    semiring: AbstractSemiring,
    shape: Shape = (),
    dtype: Any = np.float64,
    *,
    bound: float = 5.0,
    zeros: bool = True,
) -> st.SearchStrategy[np.ndarray]:
    r"""Arrays of valid values of a built-in semiring, of batch shape `shape`.

    - `Log`, `Max`: scores in $[-\text{bound}, \text{bound}]$, and $-\infty$ ($\bar 0$).
    - `Std`: weights $e^s$ for such scores (so in $[0, e^{\text{bound}}]$).
    - `KMax(k)`: $k$ such scores sorted in decreasing order ($-\infty$ last).
    - `Entropy`: pairs $(a, H)$, $a$ such a score and $H \in [0, \text{bound}]$, with
      $H = 0$ where $a = -\infty$.

    **Arguments:**

    - `semiring`: one of `Log()`, `Std()`, `Max()`, `KMax(k)`, `Entropy()`.
    - `shape`: the batch shape (e.g. `(K, K)` for matrices).
    - `dtype`: a floating dtype.
    - `bound`: the range of the scores.
    - `zeros`: whether to draw $\bar 0$ entries too.

    **Returns:**

    A strategy of arrays of shape `(*shape, *semiring.value_shape)`.
    """
    shape = _shape(shape)
    if isinstance(semiring, Log | Max):
        return _scores(shape, dtype, bound, zeros)
    if isinstance(semiring, Std):
        return _scores(shape, dtype, bound, zeros).map(lambda s: np.exp(s).astype(dtype))
    if isinstance(semiring, KMax):
        ranked = _scores((*shape, semiring.k), dtype, bound, zeros)
        return ranked.map(lambda s: -np.sort(-s, axis=-1))
    if isinstance(semiring, Entropy):
        scores = _scores(shape, dtype, bound, zeros)
        entropies = hnp.arrays(
            np.dtype(dtype),
            shape,
            elements=hnp.from_dtype(
                np.dtype(dtype), min_value=0.0, max_value=bound, allow_subnormal=False
            ),
        )
        return st.tuples(scores, entropies).map(
            lambda p: np.stack([p[0], np.where(np.isneginf(p[0]), 0, p[1])], axis=-1).astype(dtype)
        )
    raise TypeError(
        f"No strategy for {type(semiring).__name__} values; pass your own strategy for its values."
    )


def semiring_matrices(
    semiring: AbstractSemiring, K: int = 3, dtype: Any = np.float64, **kwargs
) -> st.SearchStrategy[np.ndarray]:
    """Elements of `SemiringMatMul(semiring)`: $K\\times K$ matrices of values
    (`semiring_values` of shape `(K, K)`; keyword arguments are passed on)."""
    return semiring_values(semiring, (K, K), dtype, **kwargs)


def semiring_vectors(
    semiring: AbstractSemiring, K: int = 3, dtype: Any = np.float64, **kwargs
) -> st.SearchStrategy[np.ndarray]:
    """States of `SemiringMatMul(semiring)`: vectors of $K$ values."""
    return semiring_values(semiring, (K,), dtype, **kwargs)


# -------------------------------------------------------------------------- monoids


def _batch_shape(semiring: AbstractSemiring, x) -> tuple[int, ...]:
    return x.shape[: x.ndim - len(semiring.value_shape)]


class SemiringPlus(AbstractMonoid):
    r"""The additive monoid $(S, \oplus, \bar 0)$ of a semiring, on arrays of values
    (elementwise), for `check_laws`.

    **Arguments:**

    - `semiring`: the semiring.
    """

    semiring: AbstractSemiring

    def combine(self, earlier, later):
        return self.semiring.add(earlier, later)

    def identity(self, like):
        return self.semiring.zero(
            like.shape[: like.ndim - len(self.semiring.value_shape)], like.dtype
        )


class SemiringTimes(AbstractMonoid):
    r"""The multiplicative monoid $(S, \otimes, \bar 1)$ of a semiring, on arrays of
    values (elementwise), for `check_laws`; the distributive and annihilation laws
    read the semiring's $\oplus$ and $\bar 0$ from its `semiring` field.

    **Arguments:**

    - `semiring`: the semiring.
    """

    semiring: AbstractSemiring

    def combine(self, earlier, later):
        return self.semiring.times(earlier, later)

    def identity(self, like):
        return self.semiring.one(
            like.shape[: like.ndim - len(self.semiring.value_shape)], like.dtype
        )


# ----------------------------------------------------------------------------- laws


def _commutativity(monoid, a, b):
    return monoid.combine(a, b), monoid.combine(b, a)


def _left_distributivity(monoid, a, b, c):
    s = monoid.semiring
    return s.times(a, s.add(b, c)), s.add(s.times(a, b), s.times(a, c))


def _right_distributivity(monoid, a, b, c):
    s = monoid.semiring
    return s.times(s.add(a, b), c), s.add(s.times(a, c), s.times(b, c))


def _annihilation(monoid, a):
    s = monoid.semiring
    zero = s.zero(_batch_shape(s, a), a.dtype)
    return (s.times(zero, a), s.times(a, zero)), (zero, zero)


commutativity = Law(
    name="commutativity",
    equation="combine(a, b) == combine(b, a)",
    draws=(("a", "element"), ("b", "element")),
    fn=_commutativity,
)
left_distributivity = Law(
    name="left_distributivity",
    equation="times(a, plus(b, c)) == plus(times(a, b), times(a, c))",
    draws=(("a", "element"), ("b", "element"), ("c", "element")),
    fn=_left_distributivity,
)
right_distributivity = Law(
    name="right_distributivity",
    equation="times(plus(a, b), c) == plus(times(a, c), times(b, c))",
    draws=(("a", "element"), ("b", "element"), ("c", "element")),
    fn=_right_distributivity,
)
annihilation = Law(
    name="annihilation",
    equation="(times(zero, a), times(a, zero)) == (zero, zero)",
    draws=(("a", "element"),),
    fn=_annihilation,
)

semiring_laws: dict[str, tuple[Law, ...]] = {
    "plus": (associativity, left_identity, right_identity, commutativity),
    "times": (
        associativity,
        left_identity,
        right_identity,
        left_distributivity,
        right_distributivity,
        annihilation,
    ),
}
"""The laws `check_semiring_laws` checks, for `SemiringPlus` and `SemiringTimes`."""


def check_semiring_laws(
    semiring: AbstractSemiring,
    values: st.SearchStrategy | None = None,
    *,
    max_examples: int | None = None,
    methods: Sequence | None = None,
    **kwargs,
) -> list[str]:
    r"""Check the semiring laws of `semiring` with `scanalg.check_laws`.

    $\oplus$ (`SemiringPlus`): associative, commutative, identity $\bar 0$; $\otimes$
    (`SemiringTimes`): associative, identity $\bar 1$, distributive over $\oplus$ on
    both sides, $\bar 0$ annihilates. With `methods`, also `scan_agrees_with_fold`
    for both monoids on those scan methods.

    **Arguments:**

    - `semiring`: the semiring.
    - `values`: a strategy for its values (default `semiring_values(semiring)`).
    - `max_examples`: examples per law.
    - `methods`: scan methods for `scan_agrees_with_fold` (default: not checked).
    - further keyword arguments go to `check_laws` (e.g. `rtol`).

    **Returns:**

    The names of the laws checked, as `"plus.associativity"`, ...

    **Raises:**

    `scanalg.LawViolation` for the first law that fails.
    """
    values = semiring_values(semiring) if values is None else values
    checked = []
    for name, monoid in (("plus", SemiringPlus(semiring)), ("times", SemiringTimes(semiring))):
        laws = semiring_laws[name]
        options = {}
        if methods is not None:
            laws = (*laws, _scan_agrees_with_fold)
            options["methods"] = methods
        done = check_laws(monoid, values, laws=laws, max_examples=max_examples, **options, **kwargs)
        checked += [f"{name}.{law.name}" for law in done]
    return checked
