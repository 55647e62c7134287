"""Diagonal linear recurrences, as in linear RNN and state-space layers."""

from typing import ClassVar

import jax
import jax.numpy as jnp
from jaxtyping import Array, Inexact

from .._monoid import AbstractMonoid, ActionDirection

_Element = tuple[Inexact[Array, "*n"], Inexact[Array, "*n"]]


class DiagonalAffine(AbstractMonoid):
    r"""Composition of elementwise affine maps $h \mapsto a \odot h + b$, in time order.

    This is the linear recurrence of diagonal linear RNNs and state-space layers
    (LRU, S4D, S5, Mamba-style selective scans):

    $$h_t = a_t \odot h_{t-1} + b_t,$$

    with $a_t$ real or complex. Elements are pairs `(a, b)` of arrays of the same
    shape (`(n,)` for a hidden size $n$; any shape works, elementwise); `b` may be
    complex when `a` is real. The product applies the earlier map first,

    $$(a_1, b_1) \otimes (a_2, b_2) = (a_2 \odot a_1,\; a_2 \odot b_1 + b_2),
      \qquad e = (\mathbf{1}, \mathbf{0}),$$

    and the forward action is one step of the recurrence,
    $h \cdot (a, b) = a \odot h + b$, so `scan(DiagonalAffine(), (a, b), init=h0)`
    returns $h_1, \dots, h_T$. Each combine costs $O(n)$, so the parallel scan does only
    a constant factor more work than the loop. Everything is differentiable
    (`jax.grad` through any method equals the gradient of the loop, up to rounding).
    """

    action_direction: ClassVar[ActionDirection] = "forward"

    def combine(self, earlier: _Element, later: _Element) -> _Element:
        a1, b1 = earlier
        a2, b2 = later
        return a2 * a1, a2.astype(b1.dtype) * b1 + b2

    def identity(self, like: _Element) -> _Element:
        a, b = like
        return jnp.ones_like(a), jnp.zeros_like(b)

    def act(self, state: Inexact[Array, "*n"], element: _Element) -> Inexact[Array, "*n"]:
        a, b = element
        return a.astype(state.dtype) * state + b

    def check_inputs(
        self,
        xs: tuple[Inexact[Array, " T *n"], Inexact[Array, " T *n"]],
        init: Inexact[Array, "*n"] | None,
    ):
        """`a` and `b` of the same precision, `b` complex if `a` is, and `init` of the
        dtype of `b` (no implicit promotion inside the scan)."""
        try:
            a, b = xs
        except (TypeError, ValueError):
            raise TypeError("DiagonalAffine `elems` must be a pair (a, b).") from None
        a_dtype, b_dtype = jnp.dtype(a.dtype), jnp.dtype(b.dtype)
        with jax.numpy_dtype_promotion("standard"):
            joint = jnp.promote_types(a_dtype, b_dtype)
        if joint != b_dtype or not jnp.issubdtype(b_dtype, jnp.inexact):
            raise TypeError(
                f"DiagonalAffine needs `b` of a floating or complex dtype that holds `a`'s: "
                f"got a: {a_dtype.name}, b: {b_dtype.name} (b may be complex when a is real, "
                "not the other way round)."
            )
        if init is not None and jnp.dtype(init.dtype) != b_dtype:
            raise TypeError(
                f"DiagonalAffine `init` must have the dtype of `b` ({b_dtype.name}), got "
                f"{jnp.dtype(init.dtype).name}."
            )
        return xs, init
