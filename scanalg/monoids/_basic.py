"""Elementwise and matrix monoids."""

import abc
from typing import ClassVar

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._monoid import AbstractMonoid, ActionDirection


def _lowest(dtype) -> Array:
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating):
        return jnp.array(-jnp.inf, dtype)
    if jnp.issubdtype(dtype, jnp.integer):
        return jnp.array(jnp.iinfo(dtype).min, dtype)
    if dtype == jnp.bool_:
        return jnp.array(False)
    raise TypeError(f"No lowest value for dtype {dtype}.")


def _highest(dtype) -> Array:
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating):
        return jnp.array(jnp.inf, dtype)
    if jnp.issubdtype(dtype, jnp.integer):
        return jnp.array(jnp.iinfo(dtype).max, dtype)
    if dtype == jnp.bool_:
        return jnp.array(True)
    raise TypeError(f"No highest value for dtype {dtype}.")


class AbstractElementwise(AbstractMonoid):
    """A commutative monoid applied leaf by leaf to pytrees of arrays.

    Its action is the operation itself, `act(s, x) = combine(s, x)`, lawful in both
    directions because the operation is commutative.
    """

    action_direction: ClassVar[ActionDirection] = "both"

    @abc.abstractmethod
    def _op(self, a: Array, b: Array) -> Array: ...

    @abc.abstractmethod
    def _neutral(self, like: Array) -> Array: ...

    def combine(self, earlier, later):
        return jax.tree.map(self._op, earlier, later)

    def identity(self, like):
        return jax.tree.map(lambda x: jnp.broadcast_to(self._neutral(x), jnp.shape(x)), like)

    def act(self, state, element):
        return self.combine(state, element)


class Sum(AbstractElementwise):
    r"""Addition: $a \otimes b = a + b$, identity $0$. Its scan is `cumsum`."""

    def _op(self, a, b):
        return a + b

    def _neutral(self, like):
        return jnp.zeros((), jnp.result_type(like))


class Product(AbstractElementwise):
    r"""Multiplication: $a \otimes b = a b$, identity $1$. Its scan is `cumprod`."""

    def _op(self, a, b):
        return a * b

    def _neutral(self, like):
        return jnp.ones((), jnp.result_type(like))


class Max(AbstractElementwise):
    r"""Maximum: $a \otimes b = \max(a, b)$, identity $-\infty$ (or the dtype's minimum)."""

    def _op(self, a, b):
        return jnp.maximum(a, b)

    def _neutral(self, like):
        return _lowest(jnp.result_type(like))


class Min(AbstractElementwise):
    r"""Minimum: $a \otimes b = \min(a, b)$, identity $+\infty$ (or the dtype's maximum)."""

    def _op(self, a, b):
        return jnp.minimum(a, b)

    def _neutral(self, like):
        return _highest(jnp.result_type(like))


class LogAddExp(AbstractElementwise):
    r"""Log-sum-exp: $a \otimes b = \log(e^a + e^b)$, identity $-\infty$.

    Its scan is a numerically stable cumulative `logsumexp`. Elements (and states)
    are floating point; integer `elems` are a `TypeError`.
    """

    def check_inputs(self, xs, init):
        for name, tree in (("elems", xs), ("init", init)):
            for leaf in jax.tree.leaves(tree):
                if not jnp.issubdtype(leaf.dtype, jnp.floating):
                    raise TypeError(
                        f"LogAddExp needs floating-point `{name}` (log-weights), got "
                        f"{jnp.dtype(leaf.dtype).name}; cast them, e.g. "
                        f"`{name}.astype(jnp.float32)`."
                    )
        return xs, init

    def _op(self, a, b):
        return jnp.logaddexp(a, b)

    def _neutral(self, like):
        return jnp.array(-jnp.inf, jnp.result_type(like))


class MatMul(AbstractMonoid):
    r"""Matrix product in time order: $A \otimes B = A B$, identity $I$.

    The scan gives $A_1 A_2 \cdots A_t$. The action is on row vectors (or stacks of
    them, shape `(..., n)`): $s \cdot A = s A$, a forward action costing $O(n^2)$
    per step instead of the $O(n^3)$ of a product.
    """

    action_direction: ClassVar[ActionDirection] = "forward"

    def combine(
        self, earlier: Float[Array, "n n"], later: Float[Array, "n n"]
    ) -> Float[Array, "n n"]:
        return earlier @ later

    def identity(self, like: Float[Array, "n n"]) -> Float[Array, "n n"]:
        return jnp.eye(like.shape[-1], dtype=like.dtype)

    def act(
        self, state: Float[Array, "*b n"], element: Float[Array, "n n"]
    ) -> Float[Array, "*b n"]:
        return state @ element


class Affine(AbstractMonoid):
    r"""Composition of affine maps $x \mapsto A x + b$, in time order.

    Elements are pairs `(A, b)` with `A` of shape `(n, n)` and `b` of shape `(n,)`.
    The product applies the earlier map first:

    $$(A_1, b_1) \otimes (A_2, b_2) = (A_2 A_1,\; A_2 b_1 + b_2),$$

    identity $(I, 0)$. With an initial state $h_0$ the scan solves the linear
    recurrence $h_t = A_t h_{t-1} + b_t$ (forward action $h \cdot (A, b) = A h + b$,
    $O(n^2)$ per step).
    """

    action_direction: ClassVar[ActionDirection] = "forward"

    def combine(
        self,
        earlier: tuple[Float[Array, "n n"], Float[Array, " n"]],
        later: tuple[Float[Array, "n n"], Float[Array, " n"]],
    ) -> tuple[Float[Array, "n n"], Float[Array, " n"]]:
        a1, b1 = earlier
        a2, b2 = later
        return a2 @ a1, a2 @ b1 + b2

    def identity(self, like):
        a, b = like
        return jnp.eye(a.shape[-1], dtype=a.dtype), jnp.zeros_like(b)

    def act(self, state: Float[Array, " n"], element) -> Float[Array, " n"]:
        a, b = element
        return a @ state + b
