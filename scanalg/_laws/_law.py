"""The laws of a monoid and its action, as named objects."""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp

from .._methods import METHODS, AbstractScanMethod, as_method
from .._monoid import AbstractMonoid, has_act, supports_direction
from .._scan import scan
from ._fold import fold

PyTree = Any
DrawKind = Literal["element", "state", "sequence", "input"]
SideKind = Literal["element", "state", "scan"]


def registered_methods() -> tuple[AbstractScanMethod, ...]:
    """One instance of every method in the method registry (`scan(..., method="name")`),
    with default arguments, in the registry's order. Methods that need arguments to be
    built (e.g. a device mesh) are left out."""
    methods = []
    for name in METHODS:
        try:
            methods.append(as_method(name))
        except (TypeError, ValueError):
            continue
    return tuple(methods)


@dataclasses.dataclass(frozen=True)
class Law:
    r"""A named law: a pure function returning the two sides of an equation.

    Call it as `law(monoid, *inputs, **options)` to get `(lhs, rhs)`; the law holds
    when they are equal (up to rounding). Used by `scanalg.check_laws`, and usable
    directly, e.g. `scanalg.laws.associativity(Sum(), 1.0, 2.0, 3.0)`.

    **Fields:**

    - `name`: the law's name, e.g. `"associativity"`.
    - `equation`: the equation, printable, e.g.
      `"combine(combine(a, b), c) == combine(a, combine(b, c))"`.
    - `draws`: the inputs, in call order, as `(name, kind)` pairs where kind is
      `"element"`, `"state"`, `"input"` (what `scan` takes: an element, for a monoid
      without `lift`) or `"sequence"` (inputs stacked along time). A `"state"` input of
      a law that does not need `act` is optional (`None` = no state).
    - `fn`: the function `fn(monoid, *inputs, **options) -> (lhs, rhs)`.
    - `sides`: what the two sides are: `"element"`, `"state"`, or `"scan"` (scan
      results: elements stacked along time, or states for the cases with `init`). The
      default equality of `check_laws` compares elements in normal form
      (`monoid.canonical`); see `normal_forms`.
    - `needs_act`: whether the law is about `act` (checked only when it is defined).
    - `options`: keyword options `check_laws` forwards to `fn` (e.g. `"methods"`).
    - `variants`: equations that depend on the monoid's `action_direction`, as
      `(direction, equation)` pairs; see `equation_for`.
    """

    name: str
    equation: str
    draws: tuple[tuple[str, DrawKind], ...]
    fn: Callable[..., tuple[PyTree, PyTree]] = dataclasses.field(repr=False)
    sides: SideKind = "element"
    needs_act: bool = False
    options: tuple[str, ...] = ()
    variants: tuple[tuple[str, str], ...] = ()

    def __call__(self, monoid: AbstractMonoid, *inputs: PyTree, **options: Any):
        """Evaluate both sides: returns `(lhs, rhs)`."""
        inputs = tuple(jax.tree.map(jnp.asarray, x) for x in inputs)
        return self.fn(monoid, *inputs, **options)

    def applies_to(self, monoid: AbstractMonoid) -> bool:
        """Whether the law is meaningful for `monoid` (action laws need an action)."""
        return has_act(monoid) or not self.needs_act

    def equation_for(self, monoid: AbstractMonoid) -> str:
        """The equation as it is checked for `monoid` (action laws depend on its
        `action_direction`)."""
        return dict(self.variants).get(getattr(monoid, "action_direction", None), self.equation)

    def normal_forms(self, monoid: AbstractMonoid, lhs: PyTree, rhs: PyTree):
        """Both sides with every element replaced by its normal form,
        `monoid.canonical` (states are left as they are)."""
        if self.sides == "state":
            return lhs, rhs
        if self.sides == "element":
            return monoid.canonical(lhs), monoid.canonical(rhs)

        def one(label, side):
            if is_state_case(label):
                return side
            return jax.vmap(monoid.canonical)(side)

        return (
            Cases((k, one(k, v)) for k, v in lhs.items()),
            Cases((k, one(k, v)) for k, v in rhs.items()),
        )


class Cases(dict):
    """The side of a law that is checked in several cases: a dict from case labels
    (e.g. `"Auto() forward inclusive"`) to values, reported case by case. A distinct
    pytree node, so that elements that are themselves dicts are not split into cases."""


jax.tree_util.register_pytree_with_keys(
    Cases,
    lambda d: (tuple((jax.tree_util.DictKey(k), v) for k, v in d.items()), tuple(d)),
    lambda keys, values: Cases(zip(keys, values)),
    flatten_func=lambda d: (tuple(d.values()), tuple(d)),
)


def _associativity(monoid, a, b, c):
    return (
        monoid.combine(monoid.combine(a, b), c),
        monoid.combine(a, monoid.combine(b, c)),
    )


def _left_identity(monoid, a):
    return monoid.combine(monoid.identity(a), a), a


def _right_identity(monoid, a):
    return monoid.combine(a, monoid.identity(a)), a


def _action_identity(monoid, s, a):
    return monoid.act(s, monoid.identity(a)), s


_FORWARD_ACTION = "act(act(s, a), b) == act(s, combine(a, b))"
_REVERSE_ACTION = "act(act(s, b), a) == act(s, combine(a, b))"


def _action_compatibility(monoid, s, a, b):
    direction = monoid.action_direction
    if direction not in ("forward", "reverse", "both"):
        raise ValueError(
            f"{type(monoid).__name__}.action_direction must be 'forward', 'reverse' or "
            f"'both', got {direction!r}."
        )
    together = monoid.act(s, monoid.combine(a, b))
    forward = monoid.act(monoid.act(s, a), b)
    reverse = monoid.act(monoid.act(s, b), a)
    if direction == "forward":
        return forward, together
    if direction == "reverse":
        return reverse, together
    return (
        Cases(forward=forward, reverse=reverse),
        Cases(forward=together, reverse=together),
    )


def _action_input_agrees(monoid, s, x):
    return monoid.act_input(s, x), monoid.act(s, monoid.lift(x))


def case_label(method, reverse: bool, exclusive: bool, with_init: bool) -> str:
    """The label of one case of `scan_agrees_with_fold`."""
    return (
        f"{method!r} {'reverse' if reverse else 'forward'} "
        f"{'exclusive' if exclusive else 'inclusive'}{' init' if with_init else ''}"
    )


def is_state_case(label: str) -> bool:
    """Whether a case of `scan_agrees_with_fold` (see `case_label`) has `init`."""
    return label.endswith(" init")


def _scan_agrees_with_fold(
    monoid, xs, s=None, *, methods: Sequence[AbstractScanMethod | str] | None = None
):
    methods = registered_methods() if methods is None else tuple(as_method(m) for m in methods)
    lhs, rhs = Cases(), Cases()
    computed = {}
    for init in (None,) if s is None else (None, s):
        with_init = init is not None
        for reverse in (False, True):
            if with_init and not supports_direction(monoid, reverse):
                continue
            for exclusive in (False, True):
                expected = fold(monoid, xs, init=init, reverse=reverse, exclusive=exclusive)
                for method in methods:
                    # `scan` runs `method.resolve(...)`; methods resolving to the same
                    # concrete method (e.g. Auto() and Sequential()) share one scan.
                    concrete = method.resolve(monoid, xs, init)
                    key = (concrete, reverse, exclusive, with_init)
                    if key not in computed:
                        computed[key] = scan(
                            monoid,
                            xs,
                            init=init,
                            reverse=reverse,
                            exclusive=exclusive,
                            method=concrete,
                        )
                    label = case_label(method, reverse, exclusive, with_init)
                    lhs[label] = computed[key]
                    rhs[label] = expected
    return lhs, rhs


associativity = Law(
    name="associativity",
    equation="combine(combine(a, b), c) == combine(a, combine(b, c))",
    draws=(("a", "element"), ("b", "element"), ("c", "element")),
    fn=_associativity,
)
left_identity = Law(
    name="left_identity",
    equation="combine(identity(a), a) == a",
    draws=(("a", "element"),),
    fn=_left_identity,
)
right_identity = Law(
    name="right_identity",
    equation="combine(a, identity(a)) == a",
    draws=(("a", "element"),),
    fn=_right_identity,
)
action_identity = Law(
    name="action_identity",
    equation="act(s, identity(a)) == s",
    draws=(("s", "state"), ("a", "element")),
    fn=_action_identity,
    sides="state",
    needs_act=True,
)
action_compatibility = Law(
    name="action_compatibility",
    equation=f"forward: {_FORWARD_ACTION}; reverse: {_REVERSE_ACTION}",
    draws=(("s", "state"), ("a", "element"), ("b", "element")),
    fn=_action_compatibility,
    sides="state",
    needs_act=True,
    variants=(
        ("forward", _FORWARD_ACTION),
        ("reverse", _REVERSE_ACTION),
        ("both", f"{_FORWARD_ACTION} and {_REVERSE_ACTION}"),
    ),
)
action_input_agrees = Law(
    name="action_input_agrees",
    equation="act_input(s, x) == act(s, lift(x))",
    draws=(("s", "state"), ("x", "input")),
    fn=_action_input_agrees,
    sides="state",
    needs_act=True,
)
scan_agrees_with_fold = Law(
    name="scan_agrees_with_fold",
    equation=(
        "scan(xs, method=m, reverse=r, exclusive=e[, init=s]) == "
        "fold(xs, reverse=r, exclusive=e[, init=s]) for every method m, r and e"
    ),
    draws=(("xs", "sequence"), ("s", "state")),
    fn=_scan_agrees_with_fold,
    sides="scan",
    options=("methods",),
)

all_laws: tuple[Law, ...] = (
    associativity,
    left_identity,
    right_identity,
    action_identity,
    action_compatibility,
    action_input_agrees,
    scan_agrees_with_fold,
)
