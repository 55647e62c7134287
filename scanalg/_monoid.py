"""The monoid protocol: `AbstractMonoid` and its optional action."""

import abc
from typing import Any, ClassVar, Literal

import equinox as eqx

PyTree = Any

ActionDirection = Literal["forward", "reverse", "both"]
"""Where a monoid's `act` is lawful; see `AbstractMonoid`."""


class AbstractMonoid(eqx.Module):
    r"""An associative `combine` with a neutral `identity`, optionally acting on a state.

    Subclass it, implement `combine` and `identity` on *single, unbatched* elements
    (pytrees of arrays); the executor vmaps them. Fields of the module are the
    monoid's parameters.

    The laws, for all elements $a, b, c$ and $e$ = `identity(a)`:

    $$(a \otimes b) \otimes c = a \otimes (b \otimes c), \qquad
      e \otimes a = a = a \otimes e.$$

    **Time order.** `combine(earlier, later)` always receives its arguments in
    time order, for forward and reverse scans alike.

    **Action (optional).** A monoid may also define `act(state, element)`, which
    lets a scan carry a small state through large elements (an HMM filter carries
    a $K$-vector through $K\times K$ matrices). Its laws depend on the direction
    it is used in, declared by the class attribute `action_direction`:

    - `"forward"` (a right action): $s \cdot e = s$ and
      $(s \cdot a) \cdot b = s \cdot (a \otimes b)$; used by forward scans.
    - `"reverse"` (a left action, written with the state first): $s \cdot e = s$ and
      $(s \cdot b) \cdot a = s \cdot (a \otimes b)$ where $a$ is earlier than $b$;
      used by reverse scans, which carry the state backwards in time.
    - `"both"`: both laws hold (e.g. commutative monoids).
    """

    action_direction: ClassVar[ActionDirection] = "forward"

    @abc.abstractmethod
    def combine(self, earlier: PyTree, later: PyTree) -> PyTree:
        r"""Combine two elements, given in time order: `earlier` comes first.

        **Arguments:**

        - `earlier`: a single element (no batch axis).
        - `later`: a single element with the same structure.

        **Returns:**

        Their product $\text{earlier} \otimes \text{later}$, with the same structure,
        shapes and dtypes. It must be associative:
        $(a \otimes b) \otimes c = a \otimes (b \otimes c)$.
        """

    @abc.abstractmethod
    def identity(self, like: PyTree) -> PyTree:
        r"""The neutral element, with the structure, shapes and dtypes of `like`.

        **Arguments:**

        - `like`: a single element, used only for its structure, shapes and dtypes
          (its values are arbitrary).

        **Returns:**

        The element $e$ with $e \otimes a = a = a \otimes e$ for every element $a$ of
        that shape, e.g. $0$ for a sum, $-\infty$ for a maximum, the identity matrix
        for a matrix product.
        """

    def lift(self, x: PyTree) -> PyTree:
        r"""Turn one *input* into an element (optional; the default returns `x`).

        `scan` and `reduce` read their `elems` as inputs and lift each one where it is
        used. A monoid whose elements are large but determined by a small input and
        its own parameters (an HMM step is a $K\times K$ matrix built from a fixed
        transition matrix and a $K$-vector of log-likelihoods) can then be scanned
        from the small inputs: `Sequential` and `Blocked` lift inside their loops and
        never hold all $T$ elements in memory.

        **Arguments:**

        - `x`: a single input (no time axis).

        **Returns:**

        The element it stands for.
        """
        return x

    def act(self, state: PyTree, element: PyTree) -> PyTree:
        """Apply `element` to `state` (optional; see the class docstring).

        **Arguments:**

        - `state`: a single state.
        - `element`: a single element.

        **Returns:**

        The new state, with the same structure, shapes and dtypes as `state`.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define `act`.")

    def act_input(self, state: PyTree, x: PyTree) -> PyTree:
        r"""Apply the *input* `x` to `state`: `act(state, lift(x))` (the default).

        Override it when acting with the input directly is cheaper than building the
        element first (the HMM backward kernel is a $K\times K$ matrix, but applying
        it to a vector needs only two matrix-vector products). It must agree with
        `act(state, lift(x))` up to rounding. `Sequential` and `Blocked` call it
        once per step when a scan has an initial state.

        **Arguments:**

        - `state`: a single state.
        - `x`: a single input (no time axis).

        **Returns:**

        The new state, with the same structure, shapes and dtypes as `state`.
        """
        return self.act(state, self.lift(x))


def has_act(monoid: AbstractMonoid) -> bool:
    """Whether `monoid` has a lawful `act`: it overrides `AbstractMonoid.act` and
    declares a direction (combinators declare `None` when what they wrap has no `act`)."""
    return type(monoid).act is not AbstractMonoid.act and monoid.action_direction is not None


def supports_direction(monoid: AbstractMonoid, reverse: bool) -> bool:
    """Whether `monoid.act` is lawful for a scan in this direction."""
    want = "reverse" if reverse else "forward"
    return monoid.action_direction in (want, "both")
