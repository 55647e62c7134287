r"""The semiring protocol: `AbstractSemiring`."""

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._numerics import finite_or_zero


def batch_axis(semiring: "AbstractSemiring", x: Array, axis: int) -> int:
    """`axis` of the batch axes of `x` (negative counts from the last batch axis)."""
    ndim = jnp.ndim(x) - len(semiring.value_shape)
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"axis {axis} is out of range for an array of {ndim} batch axes "
            f"(shape {jnp.shape(x)}, values of shape {semiring.value_shape})."
        )
    return axis % ndim


class AbstractSemiring(eqx.Module):
    r"""A commutative semiring $(S, \oplus, \otimes, \bar 0, \bar 1)$ on arrays.

    A *value* of the semiring is an array of shape `value_shape` (`()` for `Log`,
    `Std` and `Max`; `(k,)` for `KMax(k)`; `(2,)` for `Entropy`). Arrays of values
    have *batch axes* first and the value axes last: an array of shape
    `(K, K, *value_shape)` is a $K\times K$ matrix of values. Every method works on
    such arrays.

    The laws, for all values $a, b, c$:

    $$(a \oplus b) \oplus c = a \oplus (b \oplus c), \quad a \oplus b = b \oplus a,
      \quad a \oplus \bar 0 = a,$$
    $$(a \otimes b) \otimes c = a \otimes (b \otimes c), \quad
      a \otimes \bar 1 = \bar 1 \otimes a = a,$$
    $$a \otimes (b \oplus c) = (a \otimes b) \oplus (a \otimes c), \quad
      (a \oplus b) \otimes c = (a \otimes c) \oplus (b \otimes c), \quad
      a \otimes \bar 0 = \bar 0 \otimes a = \bar 0.$$

    `scanalg.strategies.check_semiring_laws` proves them for an instance.

    **Scores.** Every semiring here is graded by real *scores* (log-potentials):
    `from_scores` embeds $s \in [-\infty, \infty)$ as a value with
    $\mathrm{from\_scores}(s + t) = \mathrm{from\_scores}(s) \otimes
    \mathrm{from\_scores}(t)$, and `log_scale` reads the score back out of a value (for
    a sum of paths, the log of its total weight, or the best score). Chain dynamic
    programs use them to keep messages normalised (`normalise`), which keeps long
    chains accurate in float32.

    Subclasses implement `value_shape`, `zero`, `one`, `plus`, `times`, `from_scores`
    and `log_scale`; `matmul`, `vecmat`, `vecmat_scores` and `times_scores` have
    generic defaults built from those and may be overridden for speed. Optionally, a
    semiring declares a probability-space form of itself (`linear_form`, with
    `to_linear` and `from_linear`), which chains use where it is exact.
    """

    @property
    @abc.abstractmethod
    def value_shape(self) -> tuple[int, ...]:
        """The shape of one value (trailing axes of every array of values)."""

    @abc.abstractmethod
    def zero(self, shape: tuple[int, ...], dtype: Any) -> Array:
        r"""An array of $\bar 0$ (the identity of $\oplus$) with batch shape `shape`.

        **Arguments:**

        - `shape`: the batch shape.
        - `dtype`: a floating dtype.

        **Returns:**

        An array of shape `(*shape, *value_shape)`.
        """

    @abc.abstractmethod
    def one(self, shape: tuple[int, ...], dtype: Any) -> Array:
        r"""An array of $\bar 1$ (the identity of $\otimes$) with batch shape `shape`."""

    @abc.abstractmethod
    def plus(self, x: Array, axis: int) -> Array:
        r"""$\bigoplus$ over one batch axis.

        **Arguments:**

        - `x`: an array of values.
        - `axis`: the batch axis to reduce (negative counts from the last batch axis).

        **Returns:**

        The reduction, with that axis removed. An axis of length zero gives $\bar 0$.
        """

    @abc.abstractmethod
    def times(self, a: Array, b: Array) -> Array:
        r"""$a \otimes b$, elementwise over the batch axes.

        **Arguments:**

        - `a`, `b`: arrays of values with the same number of batch axes, which
          broadcast against each other (size-one axes; no implicit rank promotion).

        **Returns:**

        The products, with the broadcast batch shape.
        """

    @abc.abstractmethod
    def from_scores(self, s: Float[Array, "..."]) -> Array:
        r"""Embed real scores $s$ (log-potentials; $-\infty$ allowed) as values.

        A homomorphism from $([-\infty, \infty), \max \text{ or } \log\sum\exp, +)$:
        `from_scores(s + t) == times(from_scores(s), from_scores(t))` and
        `from_scores(-inf)` is $\bar 0$, `from_scores(0)` is $\bar 1$.

        **Arguments:**

        - `s`: an array of scores, any shape (all of it is batch shape).

        **Returns:**

        An array of shape `(*s.shape, *value_shape)`.
        """

    @abc.abstractmethod
    def log_scale(self, x: Array) -> Float[Array, "..."]:
        r"""The score of each value: the $t$ with
        `times_scores(x, -t)` of score zero; `log_scale(from_scores(s)) == s`.

        **Arguments:**

        - `x`: an array of values.

        **Returns:**

        A real array with the batch shape of `x` ($-\infty$ for $\bar 0$).
        """

    # ------------------------------------------------------------ generic operations

    def add(self, a: Array, b: Array) -> Array:
        r"""$a \oplus b$, elementwise (same shapes)."""
        return self.plus(jnp.stack([a, b]), axis=0)

    def times_scores(self, x: Array, s: Float[Array, "..."]) -> Array:
        r"""$x \otimes \mathrm{from\_scores}(s)$, elementwise; `s` has the batch shape
        of `x` (or broadcasts against it with the same rank)."""
        return self.times(x, self.from_scores(s))

    def matmul(self, a: Array, b: Array) -> Array:
        r"""The semiring matrix product $(A \otimes B)_{ik} = \bigoplus_j A_{ij}
        \otimes B_{jk}$.

        **Arguments:**

        - `a`: a matrix of values, shape `(n, m, *value_shape)`.
        - `b`: a matrix of values, shape `(m, p, *value_shape)`.

        **Returns:**

        The product, shape `(n, p, *value_shape)`.
        """
        return self.plus(self.times(a[:, :, None], b[None, :, :]), axis=1)

    def vecmat(self, v: Array, a: Array) -> Array:
        r"""The row vector times a matrix, $(v \otimes A)_j = \bigoplus_i v_i \otimes
        A_{ij}$: shapes `(n, *value_shape)` and `(n, p, *value_shape)` to
        `(p, *value_shape)`."""
        return self.plus(self.times(v[:, None], a), axis=0)

    def vecmat_scores(self, v: Array, w: Float[Array, "n p"]) -> Array:
        r"""`vecmat(v, from_scores(w))` for a real matrix of scores `w`, without
        building the matrix of values (cheaper for values with several numbers)."""
        return self.plus(self.times_scores(v[:, None], w), axis=0)

    def total(self, x: Array) -> Array:
        r"""$\bigoplus$ over all batch axes: one value."""
        if jnp.ndim(x) - len(self.value_shape) != 1:
            x = x.reshape(-1, *self.value_shape)
        return self.plus(x, axis=0)

    def normalise(self, x: Array) -> tuple[Array, Float[Array, ""]]:
        r"""Split off the score of the total: `x == times_scores(y, shift)` with
        `shift = log_scale(total(x))`, so that `total(y)` has score zero (for `Log`,
        `y` sums to one in probability; for `Max`, its largest entry is zero). An
        array of $\bar 0$ is left alone (`shift` zero). The normal form is canonical:
        arrays that differ by a common score have the same `y`.

        The shift is a constant for differentiation (`stop_gradient`), so the
        gradient of anything computed from `y` is that of the same thing computed
        from `x`.

        **Arguments:**

        - `x`: an array of values.

        **Returns:**

        `(y, shift)`, `shift` a real scalar.
        """
        shift = jax.lax.stop_gradient(finite_or_zero(self.log_scale(self.total(x))))
        return self.times_scores(x, jnp.broadcast_to(-shift, self._batch_shape(x))), shift

    def prepare_scores(self, w: Float[Array, "n p"]):
        r"""A fast form of a fixed score matrix for `vecmat_prepared`, or `None` (the
        default) when the semiring has none."""
        return None

    def vecmat_prepared(self, v: Array, prepared) -> Array:
        r"""`vecmat_scores(v, w)` from `prepared = prepare_scores(w)`. Only semirings
        whose `prepare_scores` returns a fast form implement it."""
        raise NotImplementedError(f"{type(self).__name__} has no prepared score form.")

    def normalise_positive(self, x: Array) -> Array:
        r"""`normalise(x)[0]` for an `x` whose total is known to be positive (not
        $\bar 0$), which may be cheaper (the default is `normalise`)."""
        return self.normalise(x)[0]

    # ------------------------------------------------------------- linear form

    def linear_form(self) -> "AbstractSemiring | None":
        r"""A semiring on nonnegative weights that computes the same chain sums in
        probability space (`to_linear` and `from_linear` translate), or `None` (the
        default): then chains always run in this semiring.

        Chain dynamic programs with fixed potentials use it when it is exact (see
        `scanalg.semirings.chain_forward`): its `prepare_scores`, `vecmat_prepared`
        and `normalise_positive` make a step a few multiply-adds per entry, with no
        exponential. `Log` has `Std`; `Entropy` has the expectation semiring of
        (weight, weight times information).
        """
        return None

    def to_linear(self, x: Array) -> Array:
        r"""Values of this semiring as values of `linear_form()` (with the same
        scores)."""
        raise NotImplementedError(f"{type(self).__name__} has no linear form.")

    def from_linear(self, y: Array, offset: Float[Array, "..."]) -> Array:
        r"""Values of `linear_form()` back as values of this semiring, their scores
        raised by `offset` (broadcast against the batch shape of `y`):
        `from_linear(to_linear(x), 0) == x`."""
        raise NotImplementedError(f"{type(self).__name__} has no linear form.")

    def _batch_shape(self, x: Array) -> tuple[int, ...]:
        return jnp.shape(x)[: jnp.ndim(x) - len(self.value_shape)]


def check_semiring(semiring: Any, name: str = "semiring") -> AbstractSemiring:
    """Raise a `TypeError` naming the argument unless `semiring` is a semiring."""
    if not isinstance(semiring, AbstractSemiring):
        raise TypeError(
            f"`{name}` must be an instance of scanalg.semirings.AbstractSemiring (e.g. "
            f"Log(), Max(), KMax(4), Entropy()), got {type(semiring).__name__}: {semiring!r}."
        )
    return semiring
