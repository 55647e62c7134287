r"""Combinators: new lawful monoids built from old ones.

- `Pair(m1, m2)` and `Struct(monoids)`: component-wise products of monoids.
- `Dual(m)`: the opposite monoid, $a \otimes^{\mathrm{op}} b = b \otimes a$.
- `Segmented(m)`: Blelloch's segmented scan; a flag restarts the scan.
- `Masked(m)`: a validity flag; invalid elements act as the identity.

Each combinator is lawful whenever its inner monoids are (the law checker proves it
for every built-in monoid) and forwards the rest of the protocol to them: `lift` (and
`lifts`), `act_input`, `canonical` and `check_inputs`. It defines `act` whenever its
inner monoids define a lawful action in a compatible direction. When they do not, the
combinator's `action_direction` is `None` and its `act` raises a `TypeError` saying
why.
"""

import abc
import functools
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, PyTree

from .._monoid import AbstractMonoid, ActionDirection, has_act, has_lift

Flag = Bool[Array, ""] | Int[Array, ""]
"""A segment or validity flag: a scalar bool, or a 0/1 integer."""

_FLIP: dict[Any, Any] = {"forward": "reverse", "reverse": "forward", "both": "both", None: None}


def _is_monoid(x: Any) -> bool:
    return isinstance(x, AbstractMonoid)


def _call(method: str, monoid: AbstractMonoid, *args):
    """`monoid.method(*args)` (a module-level function, for `functools.partial`: see
    `scanalg._methods._base.emitter`)."""
    return getattr(monoid, method)(*args)


def _check_monoid(combinator: str, argument: str, value: Any) -> None:
    if not _is_monoid(value):
        raise TypeError(
            f"{combinator}({argument}=...) must be a scanalg.AbstractMonoid instance, "
            f"got {type(value).__name__}: {value!r}."
        )


def inner_direction(monoid: AbstractMonoid) -> ActionDirection | None:
    """The direction of `monoid`'s action, or `None` if it has no lawful `act`."""
    if not has_act(monoid):
        return None
    return monoid.action_direction


def joint_direction(directions: list) -> ActionDirection | None:
    """The direction in which all of `directions` are lawful together (`None` if none)."""
    if any(d is None for d in directions):
        return None
    strict = set(directions) - {"both"}
    if not strict:
        return "both"
    if len(strict) == 1:
        return strict.pop()
    return None


def _no_action(combinator: AbstractMonoid, why: str) -> TypeError:
    return TypeError(f"{combinator!r} has no lawful `act`: {why}")


def _flag(flag: Array) -> Array:
    """A flag as a scalar bool (flags may be stored as bool or as 0/1 integers)."""
    flag = jnp.asarray(flag)
    if flag.ndim != 0:
        raise ValueError(
            f"A segment/validity flag must be a scalar per element, got shape {flag.shape}."
        )
    return flag.astype(bool)


def _select(pred: Array, on_true: PyTree, on_false: PyTree) -> PyTree:
    """`where(pred, on_true, on_false)` leaf by leaf, for a scalar `pred`."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def _as_arrays(tree: PyTree) -> PyTree:
    return None if tree is None else jax.tree.map(jnp.asarray, tree)


def _split(combinator: AbstractMonoid, what: str, tree: PyTree, kind: str) -> tuple:
    """`tree` (inputs or a state of a pair-like combinator) as `(flags, values)`."""
    try:
        flags, values = tree
    except (TypeError, ValueError):
        raise TypeError(
            f"`{what}` of {type(combinator).__name__} must be a pair ({kind}, values), got "
            f"{type(tree).__name__}."
        ) from None
    return flags, values


def _or(f1: Array, f2: Array) -> Array:
    return jnp.logical_or(_flag(f1), _flag(f2)).astype(jnp.result_type(f1))


# --------------------------------------------------------------------------------------
# Products of monoids.
# --------------------------------------------------------------------------------------


class AbstractComponentwise(AbstractMonoid):
    r"""A product of monoids: elements are pytrees of inner elements, combined
    component-wise. Subclasses say which monoids via `parts()`.

    With monoids $M_1, \dots, M_n$ the product $M_1 \times\cdots\times M_n$ has

    $$(a_1, \dots, a_n) \otimes (b_1, \dots, b_n) = (a_1 \otimes b_1, \dots, a_n \otimes b_n),
      \qquad e = (e_1, \dots, e_n),$$

    and, when every $M_i$ acts in a common direction, the action
    $(s_1, \dots, s_n) \cdot (a_1, \dots, a_n) = (s_1 \cdot a_1, \dots, s_n \cdot a_n)$.
    """

    @abc.abstractmethod
    def parts(self) -> PyTree[AbstractMonoid]:
        """The inner monoids, in the container structure of the elements."""

    def _map(self, method: str, *trees: PyTree) -> PyTree:
        apply = functools.partial(_call, method)
        return jax.tree.map(apply, self.parts(), *trees, is_leaf=_is_monoid)

    def _per_part(self, what: str, tree: PyTree) -> list:
        """`tree` cut into one subtree per part (a `TypeError` naming `what` if its
        structure does not fit the parts)."""
        treedef = jax.tree.structure(self.parts(), is_leaf=_is_monoid)
        try:
            return treedef.flatten_up_to(tree)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"`{what}` of {type(self).__name__} must hold one entry per part, in the "
                f"structure {treedef}: {e}"
            ) from None

    @property
    def action_direction(self) -> ActionDirection | None:
        parts = jax.tree.leaves(self.parts(), is_leaf=_is_monoid)
        return joint_direction([inner_direction(m) for m in parts])

    @property
    def lifts(self) -> bool:
        return any(has_lift(m) for m in jax.tree.leaves(self.parts(), is_leaf=_is_monoid))

    def combine(self, earlier: PyTree, later: PyTree) -> PyTree:
        return self._map("combine", earlier, later)

    def identity(self, like: PyTree) -> PyTree:
        return self._map("identity", like)

    def lift(self, x: PyTree) -> PyTree:
        return self._map("lift", x)

    def canonical(self, element: PyTree) -> PyTree:
        return self._map("canonical", element)

    def _check_action(self) -> None:
        if self.action_direction is None:
            directions = [
                f"{type(m).__name__}: {inner_direction(m)}"
                for m in jax.tree.leaves(self.parts(), is_leaf=_is_monoid)
            ]
            raise _no_action(
                self,
                "its parts need actions that are all lawful in one direction; their "
                f"directions are {', '.join(directions)} (None = no `act`).",
            )

    def act(self, state: PyTree, element: PyTree) -> PyTree:
        self._check_action()
        return self._map("act", state, element)

    def act_input(self, state: PyTree, x: PyTree) -> PyTree:
        self._check_action()
        return self._map("act_input", state, x)

    def check_inputs(self, xs: PyTree, init: PyTree | None) -> tuple[PyTree, PyTree | None]:
        parts = jax.tree.leaves(self.parts(), is_leaf=_is_monoid)
        treedef = jax.tree.structure(self.parts(), is_leaf=_is_monoid)
        xs_parts = self._per_part("elems", xs)
        init_parts = [None] * len(parts) if init is None else self._per_part("init", init)
        checked = [m.check_inputs(x, s) for m, x, s in zip(parts, xs_parts, init_parts)]
        xs = treedef.unflatten([x for x, _ in checked])
        if init is not None:
            init = treedef.unflatten([s for _, s in checked])
        return xs, init


class Pair(AbstractComponentwise):
    r"""The product of two monoids: elements are tuples `(x1, x2)`, combined
    component-wise.

    $$(a_1, a_2) \otimes (b_1, b_2) = (a_1 \otimes_1 b_1,\; a_2 \otimes_2 b_2),
      \qquad e = (e_1, e_2).$$

    One scan of `Pair(m1, m2)` computes both scans at once (e.g. a running sum and a
    running maximum). States are tuples `(s1, s2)`, acted on component-wise when both
    monoids act in a common direction (`"both"` is compatible with either).

    **Arguments:**

    - `first`: the monoid of the first component.
    - `second`: the monoid of the second component.
    """

    first: AbstractMonoid
    second: AbstractMonoid

    def __check_init__(self):
        _check_monoid("Pair", "first", self.first)
        _check_monoid("Pair", "second", self.second)

    def parts(self) -> tuple[AbstractMonoid, AbstractMonoid]:
        return (self.first, self.second)


class Struct(AbstractComponentwise):
    r"""The product of any number of monoids, arranged in a pytree (a tuple, list,
    dict, NamedTuple, ... whose leaves are monoids).

    Elements have the same container structure, with an element of the corresponding
    monoid in each place; they are combined place by place:

    $$\big(a_k\big)_k \otimes \big(b_k\big)_k = \big(a_k \otimes_k b_k\big)_k,
      \qquad e = (e_k)_k.$$

    For example `Struct({"total": Sum(), "peak": Max()})` scans elements
    `{"total": x, "peak": x}`. (`scanalg.monoids.Product` is multiplication; this is the
    *product monoid*, hence the different name.) `Pair(m1, m2)` is
    `Struct((m1, m2))` with named fields.

    **Arguments:**

    - `monoids`: a pytree whose leaves are `scanalg.AbstractMonoid` instances.
    """

    monoids: PyTree[AbstractMonoid]

    def __check_init__(self):
        leaves, _ = jax.tree.flatten_with_path(self.monoids, is_leaf=_is_monoid)
        for path, leaf in leaves:
            if not _is_monoid(leaf):
                where = jax.tree_util.keystr(path) or "(root)"
                raise TypeError(
                    f"Struct(monoids=...) must be a pytree of scanalg.AbstractMonoid "
                    f"instances; the leaf at {where} is {type(leaf).__name__}: {leaf!r}."
                )

    def parts(self) -> PyTree[AbstractMonoid]:
        return self.monoids


# --------------------------------------------------------------------------------------
# The opposite monoid.
# --------------------------------------------------------------------------------------


class Dual(AbstractMonoid):
    r"""The opposite (dual) monoid: the same elements, multiplied in the other order.

    $$a \otimes^{\mathrm{op}} b = b \otimes a, \qquad e^{\mathrm{op}} = e.$$

    A forward scan of the dual is a reverse scan of the original on the reversed
    sequence. With $x^{\leftarrow}$ the sequence $x$ reversed in time, $T$ its length:

    $$\texttt{scan(Dual(m), x)}_t = x_t \otimes x_{t-1} \otimes\cdots\otimes x_1
      = \texttt{scan(m, }x^{\leftarrow}\texttt{, reverse=True)}_{T+1-t},$$

    i.e. `scan(Dual(m), x) == flip(scan(m, flip(x), reverse=True))`, and likewise with
    `exclusive=True`, and with `reverse` swapped on both sides.

    **Action.** The same `act` as `m`, with the direction flipped: a right (forward)
    action of $m$ is a left (reverse) action of the dual, since
    $(s \cdot b) \cdot a = s \cdot (b \otimes a) = s \cdot (a \otimes^{\mathrm{op}} b)$.
    So with an initial state,
    `scan(Dual(m), x, init=s, reverse=True) == flip(scan(m, flip(x), init=s))`.

    **Arguments:**

    - `monoid`: the monoid to dualise.
    """

    monoid: AbstractMonoid

    def __check_init__(self):
        _check_monoid("Dual", "monoid", self.monoid)

    @property
    def action_direction(self) -> ActionDirection | None:
        return _FLIP[inner_direction(self.monoid)]

    @property
    def lifts(self) -> bool:
        return has_lift(self.monoid)

    def combine(self, earlier: PyTree, later: PyTree) -> PyTree:
        return self.monoid.combine(later, earlier)

    def identity(self, like: PyTree) -> PyTree:
        return self.monoid.identity(like)

    def lift(self, x: PyTree) -> PyTree:
        return self.monoid.lift(x)

    def canonical(self, element: PyTree) -> PyTree:
        return self.monoid.canonical(element)

    def act(self, state: PyTree, element: PyTree) -> PyTree:
        if not has_act(self.monoid):
            raise _no_action(self, f"{type(self.monoid).__name__} defines no `act`.")
        return self.monoid.act(state, element)

    def act_input(self, state: PyTree, x: PyTree) -> PyTree:
        if not has_act(self.monoid):
            raise _no_action(self, f"{type(self.monoid).__name__} defines no `act`.")
        return self.monoid.act_input(state, x)

    def check_inputs(self, xs: PyTree, init: PyTree | None) -> tuple[PyTree, PyTree | None]:
        return self.monoid.check_inputs(xs, init)


# --------------------------------------------------------------------------------------
# Segmented scans.
# --------------------------------------------------------------------------------------


class Segmented(AbstractMonoid):
    r"""Blelloch's segmented scan: a flag restarts the scan, so that many sequences
    packed one after another are scanned independently in one call.

    Elements are pairs `(flag, x)`: `flag` a scalar bool (or 0/1 integer), `x` an
    element of `monoid`. With `boundary="start"` (the default, for forward scans) the
    flag marks an element that *starts* a new segment:

    $$(f_1, x_1) \otimes (f_2, x_2) =
      \begin{cases} (1, x_2) & f_2 = 1 \\ (f_1, x_1 \otimes x_2) & f_2 = 0, \end{cases}
      \qquad e = (0, e_m),$$

    so a forward scan returns, at each $t$, the product of the elements from the start
    of $t$'s segment up to $t$ (and the flag "a segment started in $x_{1:t}$").
    With `boundary="end"` (for reverse scans) the flag marks an element that *ends* a
    segment, and the product keeps the *earlier* side instead,
    $(f_1, x_1) \otimes (f_2, x_2) = (1, x_1)$ if $f_1$, else $(f_1 \lor f_2, x_1 \otimes x_2)$;
    a reverse scan then returns the product from $t$ to the end of $t$'s segment. (This
    is exactly `Dual(Segmented(Dual(m)))`; with start flags $g$, the end flags are
    $f_t = g_{t+1}$, $f_T = 1$.) Associativity is Blelloch's: the product of a range is
    the product of its last (first) segment piece.

    **Action: every segment restarts from `reset`.** Given a state `reset`, the action
    on a state $s$ is

    $$s \cdot (f, x) = \begin{cases} \mathrm{reset} \cdot_m x & f = 1 \\
      s \cdot_m x & f = 0, \end{cases}$$

    lawful in the direction of the boundary (`"start"`: forward, needing a forward
    action of `monoid`; `"end"`: reverse, needing a reverse one). So
    `scan(Segmented(m, reset=s0), (starts, x), init=s0)` is, on every segment, exactly
    `scan(m, x_segment, init=s0)`. The `init` of the scan is used only by a first
    segment that is not flagged (a continuation, e.g. the next chunk of a stream).
    Without `reset` there is no action.

    **Arguments:**

    - `monoid`: the inner monoid.
    - `reset`: optional state that every segment starts from (needs `monoid.act`).
    - `boundary`: `"start"` (flags mark segment starts; use forward scans) or `"end"`
      (flags mark segment ends; use reverse scans).
    """

    monoid: AbstractMonoid
    reset: PyTree | None = eqx.field(default=None, converter=_as_arrays)
    boundary: str = eqx.field(default="start", static=True)  # "start" or "end"

    def __check_init__(self):
        _check_monoid("Segmented", "monoid", self.monoid)
        if self.boundary not in ("start", "end"):
            raise ValueError(
                f"Segmented(boundary=...) must be 'start' or 'end', got {self.boundary!r}."
            )

    @property
    def action_direction(self) -> ActionDirection | None:
        want = "forward" if self.boundary == "start" else "reverse"
        inner = inner_direction(self.monoid)
        if self.reset is None or inner not in (want, "both"):
            return None
        return want

    @property
    def lifts(self) -> bool:
        return has_lift(self.monoid)

    def combine(
        self, earlier: tuple[Flag, PyTree], later: tuple[Flag, PyTree]
    ) -> tuple[Flag, PyTree]:
        f1, x1 = earlier
        f2, x2 = later
        both = self.monoid.combine(x1, x2)
        if self.boundary == "start":
            x = _select(_flag(f2), x2, both)
        else:
            x = _select(_flag(f1), x1, both)
        return _or(f1, f2), x

    def identity(self, like: tuple[Flag, PyTree]) -> tuple[Flag, PyTree]:
        flag, x = like
        return jnp.zeros_like(flag), self.monoid.identity(x)

    def lift(self, x: tuple[Flag, PyTree]) -> tuple[Flag, PyTree]:
        flag, value = x
        return flag, self.monoid.lift(value)

    def canonical(self, element: tuple[Flag, PyTree]) -> tuple[Flag, PyTree]:
        flag, x = element
        return flag, self.monoid.canonical(x)

    def check_inputs(self, xs: PyTree, init: PyTree | None) -> tuple[PyTree, PyTree | None]:
        flags, values = _split(self, "elems", xs, "flags")
        if jnp.ndim(flags) != 1:
            raise ValueError(
                "The segment flags (first entry of Segmented `elems`) must have shape (T,), "
                f"one scalar per step; got shape {jnp.shape(flags)}."
            )
        values, init = self.monoid.check_inputs(values, init)
        return (flags, values), init

    def _start(self, state: PyTree, flag: Array) -> PyTree:
        """The state a step starts from: `reset` if it starts a segment, else `state`."""
        if self.action_direction is None:
            if self.reset is None:
                why = "it needs a `reset` state to restart each segment from."
            else:
                want = "forward" if self.boundary == "start" else "reverse"
                why = (
                    f"boundary={self.boundary!r} needs a {want} action of "
                    f"{type(self.monoid).__name__}, whose action direction is "
                    f"{inner_direction(self.monoid)}."
                )
            raise _no_action(self, why)
        return _select(_flag(flag), self.reset, state)

    def act(self, state: PyTree, element: tuple[Flag, PyTree]) -> PyTree:
        flag, x = element
        return self.monoid.act(self._start(state, flag), x)

    def act_input(self, state: PyTree, x: tuple[Flag, PyTree]) -> PyTree:
        flag, value = x
        return self.monoid.act_input(self._start(state, flag), value)


# --------------------------------------------------------------------------------------
# Masked elements.
# --------------------------------------------------------------------------------------


class Masked(AbstractMonoid):
    r"""Elements with a validity flag: invalid elements act as the identity.

    Elements are pairs `(valid, x)`, `valid` a scalar bool (or 0/1 integer). An
    invalid element is ignored by every valid element it meets:

    $$(v_1, x_1) \otimes (v_2, x_2) = \begin{cases}
      (1, x_1 \otimes x_2) & v_1 = v_2 = 1 \\
      (1, x_1) & v_1 = 1,\ v_2 = 0 \\
      (1, x_2) & v_1 = 0,\ v_2 = 1 \\
      (0, x_1 \otimes x_2) & v_1 = v_2 = 0,
      \end{cases} \qquad e = (0, e_m),$$

    so a scan returns, wherever its flag is set, the product of the valid elements so
    far. Where the flag is clear (no valid element yet) the value is the product of
    the invalid values seen so far, to be ignored (`canonical` replaces it by $e_m$).
    Multiplying invalid values together, rather than dropping them, is what makes the
    laws hold *exactly* for every element, whatever its invalid value, and keeps all
    scan methods in agreement. A valid value is never combined with an invalid one.

    The action leaves a state unchanged by an invalid element and never passes an
    invalid value to `monoid.act`: $s \cdot (v, x) = s \cdot_m x$ if $v$, else $s$
    (lawful in the direction of `monoid`'s action). So with an initial state, invalid
    values may be anything, `NaN` included (missing data, padding).

    **Arguments:**

    - `monoid`: the inner monoid.
    """

    monoid: AbstractMonoid

    def __check_init__(self):
        _check_monoid("Masked", "monoid", self.monoid)

    @property
    def action_direction(self) -> ActionDirection | None:
        return inner_direction(self.monoid)

    @property
    def lifts(self) -> bool:
        return has_lift(self.monoid)

    def combine(
        self, earlier: tuple[Flag, PyTree], later: tuple[Flag, PyTree]
    ) -> tuple[Flag, PyTree]:
        (v1, x1), (v2, x2) = earlier, later
        b1, b2 = _flag(v1), _flag(v2)
        # An element takes part unless it is invalid and the other one is valid.
        left = _select(b1 | ~b2, x1, self.monoid.identity(x1))
        right = _select(b2 | ~b1, x2, self.monoid.identity(x2))
        return _or(v1, v2), self.monoid.combine(left, right)

    def identity(self, like: tuple[Flag, PyTree]) -> tuple[Flag, PyTree]:
        valid, x = like
        return jnp.zeros_like(valid), self.monoid.identity(x)

    def lift(self, x: tuple[Flag, PyTree]) -> tuple[Flag, PyTree]:
        valid, value = x
        return valid, self.monoid.lift(value)

    def act(self, state: PyTree, element: tuple[Flag, PyTree]) -> PyTree:
        if not has_act(self.monoid):
            raise _no_action(self, f"{type(self.monoid).__name__} defines no `act`.")
        valid = _flag(element[0])
        new = self.monoid.act(state, self.canonical(element)[1])
        return _select(valid, new, state)

    def act_input(self, state: PyTree, x: tuple[Flag, PyTree]) -> PyTree:
        """`act(state, lift(x))`: an invalid input is replaced by the identity element
        before it meets the state, so it never reaches `monoid.act_input` (invalid
        inputs may be anything, `NaN` included, which no input form could absorb)."""
        return self.act(state, self.lift(x))

    def canonical(self, element: tuple[Flag, PyTree]) -> tuple[Flag, PyTree]:
        """The element with an invalid value replaced by the identity $e_m$, and a valid
        one in `monoid`'s normal form (works on a single element; `jax.vmap` it over a
        scan's output)."""
        valid, x = element
        return valid, _select(_flag(valid), self.monoid.canonical(x), self.monoid.identity(x))

    def check_inputs(self, xs: PyTree, init: PyTree | None) -> tuple[PyTree, PyTree | None]:
        """Checks the flags, and `monoid`'s structure, dtype and `init` checks: not the
        values, which may be anything where the flag is clear."""
        flags, values = _split(self, "elems", xs, "valid")
        if jnp.ndim(flags) != 1:
            raise ValueError(
                "The validity flags (first entry of Masked `elems`) must have shape (T,), "
                f"one scalar per step; got shape {jnp.shape(flags)}."
            )
        _, init = self.monoid.check_inputs(jax.tree.map(lambda v: v[:0], values), init)
        return xs, init
