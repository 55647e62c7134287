"""The laws of a monoid and its action, and `check_laws`, a Hypothesis-driven checker.

A law is a named, pure function `law(monoid, *inputs) -> (lhs, rhs)` with a printable
equation; it holds when both sides are equal. `check_laws` draws the inputs with
Hypothesis, evaluates every law under `jit` (compiled once per shape), and raises
`LawViolation` with the shrunk counterexample when a law fails.

Hypothesis is imported only inside `check_laws`, so `import scanalg` never needs it.
"""

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import _tree
from ._methods import (
    AbstractScanMethod,
    Auto,
    Blocked,
    Parallel,
    Sequential,
    as_method,
    element_like,
)
from ._monoid import AbstractMonoid, has_act, supports_direction
from ._scan import check_signatures, scan

PyTree = Any
DrawKind = Literal["element", "state", "sequence"]

default_methods: tuple[AbstractScanMethod, ...] = (
    Sequential(),
    Parallel(),
    Blocked(),
    Blocked(block_size=2),
    Auto(),
)


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
      `"element"`, `"state"` or `"sequence"` (scan inputs stacked along time; for a
      monoid without `lift` these are elements). A `"state"` input of a law that does
      not need `act` is optional (`None` = no state).
    - `fn`: the function `fn(monoid, *inputs, **options) -> (lhs, rhs)`.
    - `needs_act`: whether the law is about `act` (checked only when it is defined).
    - `options`: keyword options `check_laws` forwards to `fn` (e.g. `"methods"`).
    - `variants`: equations that depend on the monoid's `action_direction`, as
      `(direction, equation)` pairs; see `equation_for`.
    """

    name: str
    equation: str
    draws: tuple[tuple[str, DrawKind], ...]
    fn: Callable[..., tuple[PyTree, PyTree]] = dataclasses.field(repr=False)
    needs_act: bool = False
    options: tuple[str, ...] = ()
    variants: tuple[tuple[str, str], ...] = ()

    def __call__(self, monoid: AbstractMonoid, *inputs: PyTree, **options: Any):
        """Evaluate both sides: returns `(lhs, rhs)`."""
        inputs = tuple(jax.tree.map(jnp.asarray, x) for x in inputs)
        return self.fn(monoid, *inputs, **options)

    def applies_to(self, monoid: AbstractMonoid) -> bool:
        """Whether the law is meaningful for `monoid` (action laws need `act`)."""
        return has_act(monoid) or not self.needs_act

    def equation_for(self, monoid: AbstractMonoid) -> str:
        """The equation as it is checked for `monoid` (action laws depend on its
        `action_direction`)."""
        return dict(self.variants).get(getattr(monoid, "action_direction", None), self.equation)


# --------------------------------------------------------------------------- laws


class _Cases(dict):
    """The side of a law that is checked in several cases: a dict from case labels
    (e.g. `"Auto() forward inclusive"`) to values, reported case by case. A distinct
    pytree node, so that elements that are themselves dicts are not split into cases."""


jax.tree_util.register_pytree_with_keys(
    _Cases,
    lambda d: (tuple((jax.tree_util.DictKey(k), v) for k, v in d.items()), tuple(d)),
    lambda keys, values: _Cases(zip(keys, values)),
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
        _Cases(forward=forward, reverse=reverse),
        _Cases(forward=together, reverse=together),
    )


def _stack(items: list, like: PyTree) -> PyTree:
    if not items:
        return jax.tree.map(lambda x: jnp.zeros((0, *jnp.shape(x)), jnp.result_type(x)), like)
    return jax.tree.map(lambda *xs: jnp.stack(xs), *items)


def _stack_on_host(items: list, like: PyTree) -> PyTree:
    """`_stack` for concrete arrays, in NumPy (no compilation per length)."""
    if not items:
        return _stack(items, like)
    return jax.tree.map(lambda *xs: jnp.asarray(np.stack([np.asarray(x) for x in xs])), *items)


def fold(
    monoid: AbstractMonoid,
    xs: PyTree,
    *,
    init: PyTree | None = None,
    reverse: bool = False,
    exclusive: bool = False,
) -> PyTree:
    r"""The reference for `scanalg.scan`: a plain fold, one element at a time.

    A Python loop over time (unrolled under `jit`), independent of every scan method.
    With $x_t$ = `monoid.lift` of the $t$-th input: forward without `init`:
    $y_0 = x_0$, $y_t = y_{t-1} \otimes x_t$; reverse: $y_{T-1} = x_{T-1}$,
    $y_t = x_t \otimes y_{t+1}$; with `init` $s$ the states
    $s_t = \mathrm{act}(s_{t-1}, x_t)$ forward and $s_t = \mathrm{act}(s_{t+1}, x_t)$
    reverse, starting from $s$. `exclusive` records the value before each step (the
    identity, or $s$, at the start).

    **Arguments:**

    - `monoid`: the monoid.
    - `xs`: inputs (elements, for monoids without `lift`) stacked along a leading
      time axis.
    - `init`, `reverse`, `exclusive`: as for `scanalg.scan`.

    **Returns:**

    What `scanalg.scan(monoid, xs, init=init, reverse=reverse, exclusive=exclusive)`
    should return.
    """
    n = jax.tree.leaves(xs)[0].shape[0]
    like = element_like(monoid, xs)
    order = range(n - 1, -1, -1) if reverse else range(n)
    if init is None:
        carry = monoid.identity(like)  # only ever returned by exclusive scans
    else:
        carry = init
    before, after = {}, {}
    for i, t in enumerate(order):
        x = monoid.lift(_tree.index(xs, t))
        before[t] = carry
        if init is not None:
            carry = monoid.act(carry, x)
        elif i == 0:
            carry = x
        else:
            carry = monoid.combine(x, carry) if reverse else monoid.combine(carry, x)
        after[t] = carry
    out = before if exclusive else after
    return _stack([out[t] for t in range(n)], like if init is None else init)


def _case_label(method, reverse: bool, exclusive: bool, with_init: bool) -> str:
    return (
        f"{method!r} {'reverse' if reverse else 'forward'} "
        f"{'exclusive' if exclusive else 'inclusive'}{' init' if with_init else ''}"
    )


def _scan_agrees_with_fold(monoid, xs, s=None, *, methods=default_methods):
    methods = tuple(as_method(m) for m in methods)
    lhs, rhs = _Cases(), _Cases()
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
                    label = _case_label(method, reverse, exclusive, with_init)
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
    needs_act=True,
)
action_compatibility = Law(
    name="action_compatibility",
    equation=f"forward: {_FORWARD_ACTION}; reverse: {_REVERSE_ACTION}",
    draws=(("s", "state"), ("a", "element"), ("b", "element")),
    fn=_action_compatibility,
    needs_act=True,
    variants=(
        ("forward", _FORWARD_ACTION),
        ("reverse", _REVERSE_ACTION),
        ("both", f"{_FORWARD_ACTION} and {_REVERSE_ACTION}"),
    ),
)
scan_agrees_with_fold = Law(
    name="scan_agrees_with_fold",
    equation=(
        "scan(xs, method=m, reverse=r, exclusive=e[, init=s]) == "
        "fold(xs, reverse=r, exclusive=e[, init=s]) for every method m, r and e"
    ),
    draws=(("xs", "sequence"), ("s", "state")),
    fn=_scan_agrees_with_fold,
    options=("methods",),
)

all_laws: tuple[Law, ...] = (
    associativity,
    left_identity,
    right_identity,
    action_identity,
    action_compatibility,
    scan_agrees_with_fold,
)

# ----------------------------------------------------------------------- equality


def tolerance(dtype) -> tuple[float, float]:
    r"""The default `(rtol, atol)` for a dtype: $\sqrt{\varepsilon}$ for inexact
    dtypes ($1.5\cdot 10^{-8}$ for float64, $3.5\cdot 10^{-4}$ for float32), exact
    (`(0, 0)`) otherwise."""
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.inexact):
        eps = float(jnp.finfo(dtype).eps)
        return eps**0.5, eps**0.5
    return 0.0, 0.0


def _leaf_close(a, b, rtol, atol) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    dtype = jnp.result_type(a.dtype, b.dtype)
    if not jnp.issubdtype(dtype, jnp.inexact):
        return bool(np.array_equal(a, b))
    default_rtol, default_atol = tolerance(dtype)
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    wide = np.complex128 if jnp.issubdtype(dtype, jnp.complexfloating) else np.float64
    a, b = a.astype(wide), b.astype(wide)
    with np.errstate(invalid="ignore", over="ignore"):
        close = (a == b) | (np.isnan(a) & np.isnan(b))
        finite = np.isfinite(a) & np.isfinite(b)
        close |= finite & (np.abs(a - b) <= atol + rtol * np.maximum(np.abs(a), np.abs(b)))
    return bool(np.all(close))


def allclose(x: PyTree, y: PyTree, *, rtol: float | None = None, atol: float | None = None) -> bool:
    r"""Dtype-aware equality of two pytrees, the default of `check_laws`.

    Same structure and shapes; integer and boolean leaves equal exactly; inexact
    leaves satisfy $|x - y| \le \text{atol} + \text{rtol}\max(|x|, |y|)$ elementwise,
    with equal infinities and NaN against NaN counting as equal.

    **Arguments:**

    - `x`, `y`: pytrees of arrays.
    - `rtol`, `atol`: tolerances for inexact leaves; `None` takes them from each
      leaf's dtype (see `scanalg.laws.tolerance`).

    **Returns:**

    A Python `bool`.
    """
    if jax.tree.structure(x) != jax.tree.structure(y):
        return False
    return all(
        _leaf_close(a, b, rtol, atol) for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y))
    )


def _error_size(x: PyTree, y: PyTree) -> tuple[float, str]:
    """The size of the disagreement between two sides: (number, description)."""
    if jax.tree.structure(x) != jax.tree.structure(y):
        return float("inf"), (
            f"the sides differ in structure: {jax.tree.structure(x)} vs {jax.tree.structure(y)}"
        )
    worst_abs, worst_rel, differing, total, inexact = 0.0, 0.0, 0, 0, False
    for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return float("inf"), f"the sides differ in shape: {a.shape} vs {b.shape}"
        total += a.size
        if not jnp.issubdtype(jnp.result_type(a.dtype, b.dtype), jnp.inexact):
            differing += int(np.sum(a != b))
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            worst_abs = max(worst_abs, float(np.max(diff, initial=0.0)))
            continue
        inexact = True
        wide = np.complex128 if np.iscomplexobj(a) or np.iscomplexobj(b) else np.float64
        a, b = a.astype(wide), b.astype(wide)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            same = (a == b) | (np.isnan(a) & np.isnan(b))
            diff = np.where(same, 0.0, np.abs(a - b))
            diff = np.where(np.isnan(diff), np.inf, diff)  # NaN against a number
            scale = np.maximum(np.abs(a), np.abs(b))
            rel = np.where(diff == 0, 0.0, diff / np.where(scale > 0, scale, 1.0))
        differing += int(np.sum(~same))
        worst_abs = max(worst_abs, float(np.max(diff, initial=0.0)))
        worst_rel = max(worst_rel, float(np.max(np.nan_to_num(rel, nan=np.inf), initial=0.0)))
    if not inexact:
        return worst_abs, f"{differing} of {total} entries differ (max |lhs - rhs| = {worst_abs:g})"
    return worst_abs, (
        f"max |lhs - rhs| = {worst_abs:.6g} (relative {worst_rel:.3g}); "
        f"{differing} of {total} entries differ"
    )


def _equality_description(equal, rtol, atol, sides: PyTree) -> str:
    if not (isinstance(equal, functools.partial) and equal.func is allclose):
        name = getattr(equal, "__qualname__", None) or repr(equal)
        return f"Compared with equal={name}."
    dtypes = sorted(
        {
            jnp.dtype(x.dtype).name
            for x in jax.tree.leaves(sides)
            if jnp.issubdtype(x.dtype, jnp.inexact)
        }
    )
    parts = []
    for name in dtypes:
        default_rtol, default_atol = tolerance(name)
        r = default_rtol if rtol is None else rtol
        a = default_atol if atol is None else atol
        parts.append(f"{name}: rtol={r:.3g}, atol={a:.3g}")
    tol = "; ".join(parts) if parts else "integer leaves exactly"
    return (
        "Compared with scanalg.laws.allclose, |lhs - rhs| <= atol + rtol * max(|lhs|, |rhs|) "
        f"({tol})."
    )


def _sides(lhs: PyTree, rhs: PyTree) -> list[tuple[str | None, PyTree, PyTree]]:
    """Split sides with one entry per case (`_Cases`) into cases."""
    if isinstance(lhs, _Cases) and isinstance(rhs, _Cases) and lhs.keys() == rhs.keys():
        return [(k, lhs[k], rhs[k]) for k in lhs]
    return [(None, lhs, rhs)]


def has_nan(tree: PyTree) -> bool:
    """Whether any inexact leaf of `tree` contains a NaN."""
    return any(
        jnp.issubdtype(x.dtype, jnp.inexact) and bool(np.any(np.isnan(np.asarray(x))))
        for x in jax.tree.leaves(tree)
    )


def _failing(
    equal: Callable, lhs: PyTree, rhs: PyTree, forbid_nan: bool
) -> list[tuple[str | None, PyTree, PyTree]]:
    """The cases whose sides differ (or, with `forbid_nan`, contain a NaN)."""
    return [
        (k, a, b)
        for k, a, b in _sides(lhs, rhs)
        if not bool(equal(a, b)) or (forbid_nan and has_nan((a, b)))
    ]


# ------------------------------------------------------------------------ checking


class LawViolation(AssertionError):
    """A monoid broke one of its laws; raised by `scanalg.check_laws`.

    Its message names the monoid, the law and its equation, and shows the shrunk
    inputs, both sides and the size of the error. The same are attributes:
    `monoid`, `law` (a `scanalg.laws.Law`), `inputs` (a dict from input names to
    values), `lhs`, `rhs` and `error` (the largest absolute difference).
    """

    def __init__(self, message: str, *, monoid, law, inputs, lhs, rhs, error):
        super().__init__(message)
        self.monoid = monoid
        self.law = law
        self.inputs = inputs
        self.lhs = lhs
        self.rhs = rhs
        self.error = error


def _pad_with_identity(monoid, xs, n):
    """Replace the elements at positions `>= n` by the identity."""
    length = jax.tree.leaves(xs)[0].shape[0]
    ident = monoid.identity(_tree.like_element(xs))  # inputs are elements here
    keep = jnp.arange(length) < n

    def pad(x, e):
        return jnp.where(keep.reshape((length,) + (1,) * (x.ndim - 1)), x, e)

    return jax.tree.map(pad, xs, ident)


@functools.cache
def _compiler_options() -> dict[str, Any] | None:
    """XLA options for evaluating laws: they run many times on tiny inputs, so compile
    time dominates and XLA's backend optimisations (e.g. LLVM -O2) do not pay off.
    `None` where this XLA does not take the option."""
    options = {"xla_backend_optimization_level": 0}
    try:
        jax.jit(lambda x: x + 1, compiler_options=options)(jnp.zeros(()))
    except Exception:  # pragma: no cover - depends on the XLA version
        return None
    return options


def _evaluate_impl(law: Law, options: tuple, static_treedef, static_leaves: tuple, dynamic):
    static = jax.tree.unflatten(static_treedef, static_leaves)
    monoid, inputs, n = eqx.combine(dynamic, static)
    if n is not None:  # the first input is a padded sequence of length `n`
        inputs = (_pad_with_identity(monoid, inputs[0], n), *inputs[1:])
    return law.fn(monoid, *inputs, **dict(options))


@functools.cache
def _evaluate_jit():
    return jax.jit(
        _evaluate_impl, static_argnums=(0, 1, 2, 3), compiler_options=_compiler_options()
    )


def _evaluate(law: Law, monoid, inputs: tuple, n, options: tuple):
    """`law(monoid, *inputs)` under `jit`, compiled once per law, monoid and shapes."""
    dynamic, static = eqx.partition((monoid, inputs, n), eqx.is_array)
    # The static part keeps the containers of the inputs and the monoid (dicts, lists),
    # which are unhashable: pass it as its (hashable) treedef and non-array leaves.
    static_leaves, static_treedef = jax.tree.flatten(static)
    return _evaluate_jit()(law, options, static_treedef, tuple(static_leaves), dynamic)


_pad = eqx.filter_jit(_pad_with_identity)


def _signature(tree: PyTree):
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple((tuple(x.shape), jax.dtypes.canonicalize_dtype(x.dtype)) for x in leaves)


def _as_arrays(tree: PyTree, like: PyTree | None, what: str, strategy_name: str) -> PyTree:
    tree = jax.tree.map(jnp.asarray, tree)
    if like is not None and _signature(tree) != _signature(like):
        raise TypeError(
            f"The `{strategy_name}` strategy drew {what} {_tree.describe(tree)}, but an "
            f"earlier draw was {_tree.describe(like)}. check_laws needs every draw to have "
            "the same structure, shapes and dtypes (fix the shapes in the strategy)."
        )
    return tree


def _format_value(x) -> str:
    with np.printoptions(precision=10, threshold=200, linewidth=88):
        return repr(np.asarray(x))


def _format_tree(name: str, tree: PyTree, indent: str = "    ") -> str:
    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    if not paths:
        return f"{indent}{name} = {tree!r}"
    lines = []
    for path, leaf in paths:
        value = _format_value(leaf).replace("\n", "\n" + indent + " " * (len(name) + 3))
        lines.append(f"{indent}{name}{jax.tree_util.keystr(path)} = {value}")
    return "\n".join(lines)


def _monoid_name(monoid) -> str:
    text = repr(monoid)
    return text if len(text) <= 120 else text[:117] + "..."


def _violation(monoid, law, inputs, notes, lhs, rhs, failing, equality, forbid_nan) -> LawViolation:
    name = _monoid_name(monoid)
    lines = [
        f"{name} violates the law `{law.name}`:",
        "",
        f"    {law.equation_for(monoid)}",
        "",
        "Shrunk counterexample (found by Hypothesis):",
    ]
    for key, value in inputs.items():
        lines.append(_format_tree(key, value))
        if key in notes:
            lines.append(f"    ({notes[key]})")
    error = 0.0
    if failing[0][0] is not None:
        keys = [k for k, _, _ in failing]
        total = len(_sides(lhs, rhs))
        lines += ["", f"{len(keys)} of {total} cases disagree: " + ", ".join(keys)]
        for key, a, b in failing:
            error = max(error, _error_size(a, b)[0])
        key, a, b = failing[0]
        lines.append(f"First disagreeing case, {key}:")
    else:
        _, a, b = failing[0]
        lines += ["", "Both sides:"]
    size, description = _error_size(a, b)
    if forbid_nan and has_nan((a, b)):
        description += "; a NaN appears although no input is NaN"
    error = max(error, size)
    lines += [_format_tree("lhs", a), _format_tree("rhs", b), "", f"Error: {description}."]
    lines.append(equality)
    return LawViolation(
        "\n".join(lines), monoid=monoid, law=law, inputs=inputs, lhs=lhs, rhs=rhs, error=error
    )


def _hypothesis():
    try:
        import hypothesis
    except ImportError as e:  # pragma: no cover - hypothesis is in the `test` extra
        raise ImportError(
            "scanalg.check_laws needs Hypothesis: `pip install hypothesis` (or "
            "`pip install 'scanalg[test]'`)."
        ) from e
    return hypothesis


def _select(monoid, laws) -> tuple[Law, ...]:
    if laws is None:
        return tuple(law for law in all_laws if law.applies_to(monoid))
    by_name = {law.name: law for law in all_laws}
    selected = []
    for law in laws:
        if isinstance(law, str):
            if law not in by_name:
                valid = ", ".join(repr(k) for k in by_name)
                raise ValueError(f"Unknown law {law!r}; valid names are {valid}.")
            law = by_name[law]
        if not isinstance(law, Law):
            raise TypeError(f"`laws` must hold Law objects or law names, got {law!r}.")
        if not law.applies_to(monoid):
            raise TypeError(
                f"The law `{law.name}` is about `act`, but {type(monoid).__name__} defines no "
                "`act`."
            )
        selected.append(law)
    return tuple(selected)


def check_laws(
    monoid: AbstractMonoid,
    elements,
    *,
    states=None,
    inputs=None,
    laws: Sequence[Law | str] | None = None,
    methods: Sequence[AbstractScanMethod | str] = default_methods,
    max_examples: int | None = None,
    max_length: int = 7,
    equal: Callable[[PyTree, PyTree], bool] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    derandomize: bool | None = True,
) -> tuple[Law, ...]:
    r"""Check that `monoid` obeys its laws on inputs drawn by Hypothesis.

    The laws (see `scanalg.laws`): `associativity`, `left_identity`,
    `right_identity`, and when the monoid defines `act`, `action_identity` and
    `action_compatibility` (in its `action_direction`); finally
    `scan_agrees_with_fold`: every method in `methods`, forward and reverse,
    inclusive and exclusive (and with `init` when `act` is defined), equals a plain
    fold (`scanalg.laws.fold`). For that law Hypothesis draws a sequence of
    $n \le$ `max_length` elements, padded with `identity` to length `max_length`, so
    that every law compiles once per shape. (Given `inputs`, it draws exactly
    `max_length` inputs instead.) Laws are checked in that order and the first one
    that fails is reported.

    Works the same inside pytest and in a plain script. Hypothesis's active settings
    profile is respected (e.g. `max_examples`, `phases`), except that runs are
    derandomized by default (deterministic in CI) and have no deadline.

    **Main arguments:**

    - `monoid`: the `scanalg.AbstractMonoid` to check.
    - `elements`: a Hypothesis strategy for single elements (pytrees of arrays with
      one fixed structure, shapes and dtypes), e.g. from `scanalg.strategies`.
    - `states`: a strategy for states, needed when the monoid defines `act`.
    - `inputs`: for a monoid whose `lift` turns small inputs into elements, a strategy
      for those inputs, which `scan_agrees_with_fold` then scans. By default it scans
      elements drawn from `elements` (fine when `lift` maps elements to elements).

    **Other arguments:**

    - `laws`: the laws to check, as `Law` objects or names; default all that apply.
    - `methods`: the scan methods `scan_agrees_with_fold` runs.
    - `max_examples`: examples per law; default the active Hypothesis profile's.
    - `max_length`: the (padded) sequence length of `scan_agrees_with_fold`.
    - `equal`: `equal(lhs, rhs) -> bool` to compare the sides. Default
      `scanalg.laws.allclose` (exact for integer leaves, a tolerance from the dtype
      for floating ones), and then a NaN in a law's result fails the law unless one
      of its inputs is NaN: never a silent NaN. Pass `equal=scanalg.laws.allclose`
      to let NaN equal NaN.
    - `rtol`, `atol`: tolerances for the default `equal`.
    - `derandomize`: derandomize Hypothesis (the default); `None` follows the profile.

    **Returns:**

    The laws checked, as a tuple of `Law` objects.

    **Raises:**

    `LawViolation` (an `AssertionError`) naming the monoid, the law and its equation,
    with the shrunk inputs, both sides and the error; `TypeError` when `combine`,
    `identity` or `act` change the structure, shapes or dtypes of their inputs, or the
    strategies draw inconsistent shapes; `ValueError` for inconsistent arguments.
    """
    hypothesis = _hypothesis()
    st = hypothesis.strategies
    if not isinstance(monoid, AbstractMonoid):
        raise TypeError(
            f"`monoid` must be an instance of scanalg.AbstractMonoid, got {type(monoid).__name__}."
        )
    if not isinstance(elements, st.SearchStrategy):
        raise TypeError(f"`elements` must be a Hypothesis strategy, got {elements!r}.")
    for name, strategy in (("states", states), ("inputs", inputs)):
        if strategy is not None and not isinstance(strategy, st.SearchStrategy):
            raise TypeError(f"`{name}` must be a Hypothesis strategy or None, got {strategy!r}.")
    if equal is not None and (rtol is not None or atol is not None):
        raise ValueError("Pass either `equal` or `rtol`/`atol`, not both.")
    if not (isinstance(max_length, int) and max_length >= 0):
        raise ValueError(f"`max_length` must be an int >= 0, got {max_length!r}.")
    methods = tuple(as_method(m) for m in methods)
    selected = _select(monoid, laws)
    if states is None and any(law.needs_act for law in selected):
        raise ValueError(
            f"{type(monoid).__name__} defines `act`, so check_laws needs `states=` (a "
            "Hypothesis strategy for states) to check the action laws; or pass `laws=` "
            "without them."
        )
    use_states = states is not None and has_act(monoid)
    # The default equality also fails a law whose sides contain a NaN that no input had.
    strict_nan = equal is None
    if equal is None:
        equal = functools.partial(allclose, rtol=rtol, atol=atol)

    profile = hypothesis.settings()
    overrides: dict[str, Any] = {"deadline": None, "print_blob": False}
    if max_examples is not None:
        overrides["max_examples"] = max_examples
    if derandomize is not None:
        overrides["derandomize"] = derandomize
    if overrides.get("derandomize", profile.derandomize):
        overrides["database"] = None
    # `find` reports only the shrunk example; Hypothesis's explanation phase would
    # cost seconds and print nothing.
    overrides["phases"] = [p for p in profile.phases if p != hypothesis.Phase.explain]
    config = hypothesis.settings(profile, **overrides)
    first_draw = hypothesis.settings(config, phases=[hypothesis.Phase.generate])

    def template(strategy):
        return hypothesis.find(strategy, lambda _: True, settings=first_draw)

    like = _as_arrays(template(elements), None, "", "elements")
    state_like = _as_arrays(template(states), None, "", "states") if use_states else None
    check_signatures(monoid, like, state_like)
    # Sequences for `scan_agrees_with_fold`: elements padded with the identity, or
    # exactly `max_length` of the given inputs (inputs cannot be padded).
    padded = inputs is None
    sequence_like, sequence_name = like, "elements"
    if not padded:
        sequence_like, sequence_name = _as_arrays(template(inputs), None, "", "inputs"), "inputs"
    if any(kind == "sequence" for law in selected for _, kind in law.draws):
        try:
            lifted = jax.eval_shape(monoid.lift, sequence_like)
        except Exception as e:
            lifted, why = None, f"fails on {_tree.describe(sequence_like)} ({type(e).__name__})"
        else:
            why = f"turns {_tree.describe(sequence_like)} into {_tree.describe(lifted)}"
        if lifted is None or _signature(lifted) != _signature(like):
            problem = (
                f"{type(monoid).__name__}.lift {why}, but elements are {_tree.describe(like)}."
            )
            if padded:
                raise ValueError(f"{problem} Pass `inputs=`, a strategy for what `scan` takes.")
            raise TypeError(f"{problem} `inputs` must draw what `scan` takes for this monoid.")

    for law in selected:
        strategies, prepare = [], []
        for arg, kind in law.draws:
            if kind == "element":
                strategies.append(elements)
                prepare.append(lambda x: _as_arrays(x, like, "an element", "elements"))
            elif kind == "state":
                strategies.append(states if use_states else st.none())
                prepare.append(
                    lambda x: None if x is None else _as_arrays(x, state_like, "a state", "states")
                )
            elif kind == "sequence":
                least = 0 if padded else max_length
                strategies.append(
                    st.lists(elements if padded else inputs, min_size=least, max_size=max_length)
                )
                prepare.append(None)
            else:  # pragma: no cover
                raise ValueError(f"Unknown kind {kind!r} of input {arg!r} of {law.name}.")
        options = tuple((k, methods) for k in law.options if k == "methods")

        def evaluate(drawn, law=law, prepare=prepare, options=options):
            args, n = [], None
            for value, fix in zip(drawn, prepare):
                if fix is not None:
                    args.append(fix(value))
                    continue
                items = [_as_arrays(x, sequence_like, "a value", sequence_name) for x in value]
                if padded:
                    items += [like] * (max_length - len(items))  # overwritten by the identity
                    n = jnp.asarray(len(value))
                args.append(_stack_on_host(items, sequence_like))
            lhs, rhs = _evaluate(law, monoid, tuple(args), n, options)
            return args, n, lhs, rhs

        def fails(drawn, evaluate=evaluate):
            args, _, lhs, rhs = evaluate(drawn)
            return bool(_failing(equal, lhs, rhs, strict_nan and not has_nan(args)))

        try:
            found = hypothesis.find(st.tuples(*strategies), fails, settings=config)
        except hypothesis.errors.NoSuchExample:
            continue
        args, n, lhs, rhs = evaluate(found)
        shown, notes = {}, {}
        for (arg, kind), value in zip(law.draws, args):
            if value is None:
                continue
            if kind == "sequence" and n is not None:
                value = _pad(monoid, value, n)
                notes[arg] = (
                    f"{int(n)} drawn elements, then {max_length - int(n)} copies of the identity"
                )
            shown[arg] = value
        equality = _equality_description(equal, rtol, atol, (lhs, rhs))
        forbid_nan = strict_nan and not has_nan(args)
        failing = _failing(equal, lhs, rhs, forbid_nan)
        raise _violation(monoid, law, shown, notes, lhs, rhs, failing, equality, forbid_nan)
    return selected
