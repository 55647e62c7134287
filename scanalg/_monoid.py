"""The monoid protocol: `AbstractMonoid`, its optional action and its declarations."""

import abc
from typing import Any, Literal

import equinox as eqx

PyTree = Any

ActionDirection = Literal["forward", "reverse", "both"]
"""Where a monoid's `act` is lawful; see `AbstractMonoid`."""

_DIRECTIONS = ("forward", "reverse", "both", None)


class _Undeclared:
    """The value of a declaration a class needed but did not make (reported on
    instantiation by `AbstractMonoid.__check_init__`)."""

    def __init__(self, message: str):
        self.message = message

    def __repr__(self) -> str:
        return "<undeclared>"


# The declarations, the method each one is about, and its value when a class defines
# neither: a monoid without `act` has no action, one without `lift` does not lift.
_DECLARATIONS = {"action_direction": ("act", None), "lifts": ("lift", False)}

_HOW_TO_DECLARE = {
    "action_direction": (
        "declare where `act` is lawful: add the class attribute "
        '`action_direction = "forward"` (a state carried forward in time), "reverse" or '
        '"both" (see scanalg.AbstractMonoid)'
    ),
    "lifts": "declare it: add the class attribute `lifts = True`",
}


def _defines(cls: type, method: str) -> bool:
    """Whether `cls` or one of its bases below `AbstractMonoid` defines `method`."""
    mro = cls.__mro__
    return any(method in kls.__dict__ for kls in mro[: mro.index(AbstractMonoid)])


def _declared_in(cls: type, name: str) -> bool:
    """Whether `cls` (or a base) declares `name`, rather than having it filled in."""
    for kls in cls.__mro__:
        if name in kls.__dict__:
            value = kls.__dict__[name]
            implicit = name in kls.__dict__.get("_scanalg_implicit", ())
            return not (implicit or isinstance(value, _Undeclared))
    return False


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

    **Declarations.** What a monoid offers beyond `combine` and `identity` is declared,
    not detected: the executor and the law checker read these class attributes (or
    properties, for combinators whose answer depends on their parts).

    - `action_direction`: where `act` is lawful (`"forward"`, `"reverse"`, `"both"`),
      or `None` for no action. A class that defines `act` must declare it; one that
      does not has `None`.
    - `lifts`: whether `lift` turns inputs into elements. A class that defines `lift`
      must declare `lifts = True`; one that does not has `False`.

    A class that defines `act` (or `lift`) without its declaration fails on
    instantiation with a `TypeError` saying what to add.

    **Action (optional).** A monoid may also define `act(state, element)`, which
    lets a scan carry a small state through large elements (an HMM filter carries
    a $K$-vector through $K\times K$ matrices). Its laws depend on the declared
    `action_direction`:

    - `"forward"` (a right action): $s \cdot e = s$ and
      $(s \cdot a) \cdot b = s \cdot (a \otimes b)$; used by forward scans.
    - `"reverse"` (a left action, written with the state first): $s \cdot e = s$ and
      $(s \cdot b) \cdot a = s \cdot (a \otimes b)$ where $a$ is earlier than $b$;
      used by reverse scans, which carry the state backwards in time.
    - `"both"`: both laws hold (e.g. commutative monoids).
    """

    action_direction: eqx.AbstractClassVar[ActionDirection | None]
    lifts: eqx.AbstractClassVar[bool]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        implicit = set()
        for name, (method, absent) in _DECLARATIONS.items():
            if _declared_in(cls, name):
                continue
            if not _defines(cls, method):
                setattr(cls, name, absent)
                implicit.add(name)
            else:
                why = f"{cls.__name__} defines `{method}` but does not declare `{name}`"
                setattr(cls, name, _Undeclared(f"{why}; {_HOW_TO_DECLARE[name]}."))
        cls._scanalg_implicit = frozenset(implicit)

    def __check_init__(self):
        name = type(self).__name__
        for declaration in _DECLARATIONS:
            value = getattr(self, declaration)
            if isinstance(value, _Undeclared):
                raise TypeError(value.message)
        direction = self.action_direction
        if direction not in _DIRECTIONS:
            raise TypeError(
                f"{name}.action_direction must be 'forward', 'reverse', 'both' or None, "
                f"got {direction!r}."
            )
        if not isinstance(self.lifts, bool):
            raise TypeError(f"{name}.lifts must be True or False, got {self.lifts!r}.")
        cls = type(self)
        if direction is not None and not _defines(cls, "act"):
            raise TypeError(
                f"{name} declares action_direction={direction!r} but defines no `act`: "
                "define `act(state, element)`, or remove the declaration."
            )
        if self.lifts and not _defines(cls, "lift"):
            raise TypeError(
                f"{name} declares `lifts = True` but defines no `lift`: define "
                "`lift(x)`, or remove the declaration."
            )

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
        for a matrix product. Arrays, not Python numbers: each leaf has the dtype of
        the corresponding leaf of `like`.
        """

    def lift(self, x: PyTree) -> PyTree:
        r"""Turn one *input* into an element (optional; declare `lifts = True`).

        `scan` and `reduce` read their `elems` as inputs and lift each one where it is
        used. A monoid whose elements are large but determined by a small input and
        its own parameters (an HMM step is a $K\times K$ matrix built from a fixed
        transition matrix and a $K$-vector of log-likelihoods) can then be scanned
        from the small inputs: `Sequential` and `Blocked` lift inside their loops and
        never hold all $T$ elements in memory. Without it, inputs are elements.

        **Arguments:**

        - `x`: a single input (no time axis).

        **Returns:**

        The element it stands for.
        """
        return x

    def act(self, state: PyTree, element: PyTree) -> PyTree:
        """Apply `element` to `state` (optional; declare `action_direction`).

        **Arguments:**

        - `state`: a single state.
        - `element`: a single element.

        **Returns:**

        The new state, with the same structure, shapes and dtypes as `state`.
        """
        raise NotImplementedError(f"{type(self).__name__} defines no `act`.")

    def act_input(self, state: PyTree, x: PyTree) -> PyTree:
        r"""Apply the *input* `x` to `state`: `act(state, lift(x))` (the default).

        Override it when acting with the input directly is cheaper than building the
        element first (the HMM backward kernel is a $K\times K$ matrix, but applying
        it to a vector needs only two matrix-vector products). It must agree with
        `act(state, lift(x))` up to rounding (the law
        `scanalg.laws.action_input_agrees`). `Sequential` and `Blocked` call it once
        per step when a scan has an initial state.

        **Arguments:**

        - `state`: a single state.
        - `x`: a single input (no time axis).

        **Returns:**

        The new state, with the same structure, shapes and dtypes as `state`.
        """
        return self.act(state, self.lift(x))

    def canonical(self, element: PyTree) -> PyTree:
        r"""The normal form of an element (optional; the default returns it unchanged).

        For monoids whose elements have several representations of one value, e.g.
        *projective* ones that drop an overall scale (the HMM monoids), or `Masked`,
        whose invalid elements carry values to be ignored. Two elements are equal when
        their normal forms are; the law checker's default equality compares normal
        forms, and results of different scan methods agree up to it.

        **Arguments:**

        - `element`: a single element (no time axis).

        **Returns:**

        An element with the same structure, shapes and dtypes.
        """
        return element

    def check_inputs(self, xs: PyTree, init: PyTree | None) -> tuple[PyTree, PyTree | None]:
        """Check the inputs of a whole scan (optional; the default checks nothing).

        `scan` and `reduce` call it once, before any method runs, on the inputs stacked
        along time and the initial state: so a check costs one vectorised pass, not one
        per step. Raise `TypeError`/`ValueError` for a wrong structure, shape or dtype
        (at trace time); check values with `equinox.error_if` and return the checked
        arrays, naming the argument (`elems` or `init`) in the message.

        **Arguments:**

        - `xs`: the inputs, with a leading time axis.
        - `init`: the initial state, or `None`.

        **Returns:**

        `(xs, init)`, possibly wrapped by `equinox.error_if`.
        """
        return xs, init


def has_act(monoid: AbstractMonoid) -> bool:
    """Whether `monoid` has a lawful `act`: its declared `action_direction` is not
    `None`."""
    return monoid.action_direction is not None


def has_lift(monoid: AbstractMonoid) -> bool:
    """Whether `monoid` turns inputs into elements with `lift`: its declared `lifts`."""
    return monoid.lifts


def supports_direction(monoid: AbstractMonoid, reverse: bool) -> bool:
    """Whether `monoid.act` is lawful for a scan in this direction."""
    want = "reverse" if reverse else "forward"
    return monoid.action_direction in (want, "both")
