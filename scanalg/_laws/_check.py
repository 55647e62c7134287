"""`check_laws`: draws inputs with Hypothesis, evaluates the laws under `jit`, and
reports a shrunk counterexample.

Hypothesis is imported only inside `check_laws`, so `import scanalg` never needs it.
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _tree
from .._methods import AbstractScanMethod, as_method
from .._monoid import AbstractMonoid, has_act
from .._scan import check_signatures
from ._equality import (
    allclose,
    equality_description,
    error_size,
    failing_cases,
    has_nan,
    sides_by_case,
)
from ._fold import stack_on_host
from ._law import (
    Law,
    all_laws,
    case_label,
    registered_methods,
    scan_agrees_with_fold,
)

PyTree = Any


class LawViolation(AssertionError):
    """A monoid broke one of its laws; raised by `scanalg.check_laws`.

    Its message names the monoid, the law and its equation, and shows the shrunk
    inputs, both sides and the size of the error. The same are attributes:
    `monoid`, `law` (a `scanalg.laws.Law`), `inputs` (a dict from input names to
    values), `lhs`, `rhs`, `error` (the largest absolute difference) and `method`:
    for `scan_agrees_with_fold`, the scan method every disagreeing case runs when
    there is one such method and the other methods agree with the fold (then the
    method, not the monoid, is the likely culprit), else `None`.
    """

    def __init__(self, message: str, *, monoid, law, inputs, lhs, rhs, error, method=None):
        super().__init__(message)
        self.monoid = monoid
        self.law = law
        self.inputs = inputs
        self.lhs = lhs
        self.rhs = rhs
        self.error = error
        self.method = method


# ---------------------------------------------------------------------- evaluation


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


def _evaluate_impl(
    law: Law, options: tuple, normal_form: bool, static_treedef, static_leaves: tuple, dynamic
):
    static = jax.tree.unflatten(static_treedef, static_leaves)
    monoid, inputs, n = eqx.combine(dynamic, static)
    if n is not None:  # the first input is a padded sequence of length `n`
        inputs = (_pad_with_identity(monoid, inputs[0], n), *inputs[1:])
    lhs, rhs = law.fn(monoid, *inputs, **dict(options))
    if normal_form:
        lhs, rhs = law.normal_forms(monoid, lhs, rhs)
    return lhs, rhs


def jit_small(fn: Callable, **kwargs) -> Callable:
    """`jax.jit` for functions run on tiny inputs, where compile time dominates: XLA's
    backend optimisations are turned off where this XLA allows it."""
    return jax.jit(fn, compiler_options=_compiler_options(), **kwargs)


@functools.cache
def _evaluate_jit():
    return jit_small(_evaluate_impl, static_argnums=(0, 1, 2, 3, 4))


def _evaluate(law: Law, monoid, inputs: tuple, n, options: tuple, normal_form: bool):
    """`law(monoid, *inputs)` under `jit`, compiled once per law, monoid and shapes."""
    dynamic, static = eqx.partition((monoid, inputs, n), eqx.is_array)
    # The static part keeps the containers of the inputs and the monoid (dicts, lists),
    # which are unhashable: pass it as its (hashable) treedef and non-array leaves.
    static_leaves, static_treedef = jax.tree.flatten(static)
    return _evaluate_jit()(law, options, normal_form, static_treedef, tuple(static_leaves), dynamic)


_pad = eqx.filter_jit(_pad_with_identity)


def _signature(tree: PyTree):
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple((tuple(x.shape), jax.dtypes.canonicalize_dtype(x.dtype)) for x in leaves)


def _as_arrays(tree: PyTree, like: PyTree | None, what: str, strategy_name: str) -> PyTree:
    # Through NumPy, so that a drawn Python number becomes an array of a definite dtype
    # (not a weakly typed one, which would hide an `identity` that returns a number).
    tree = jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), tree)
    if like is not None and _signature(tree) != _signature(like):
        raise TypeError(
            f"The `{strategy_name}` strategy drew {what} {_tree.describe(tree)}, but an "
            f"earlier draw was {_tree.describe(like)}. check_laws needs every draw to have "
            "the same structure, shapes and dtypes (fix the shapes in the strategy)."
        )
    return tree


# ------------------------------------------------------------------------ reports


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


def _culprit(law, monoid, methods, args, failing) -> AbstractScanMethod | None:
    """The one method every failing case of `scan_agrees_with_fold` runs, when the
    other methods agree with the fold; `None` otherwise."""
    if law is not scan_agrees_with_fold or len(methods) < 2:
        return None
    labels = {}
    for method in methods:
        for reverse in (False, True):
            for exclusive in (False, True):
                for with_init in (False, True):
                    labels[case_label(method, reverse, exclusive, with_init)] = method
    failing_methods = {labels.get(key) for key, _, _ in failing}
    if None in failing_methods:
        return None
    if len(failing_methods) == 1:
        return failing_methods.pop()
    # Several given methods may run one concrete method (`Auto()` resolves to another).
    xs, s = args[0], (args[1] if len(args) > 1 else None)
    concrete = {m.resolve(monoid, xs, s) for m in failing_methods}
    passing = [m for m in methods if m not in failing_methods]
    if len(concrete) == 1 and passing:
        return concrete.pop()
    return None


def _violation(
    monoid, law, inputs, notes, lhs, rhs, failing, equality, forbid_nan, culprit, checked
) -> LawViolation:
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
        total = len(sides_by_case(lhs, rhs))
        lines += ["", f"{len(keys)} of {total} cases disagree: " + ", ".join(keys)]
        for key, a, b in failing:
            error = max(error, error_size(a, b)[0])
        if culprit is not None:
            unchecked = [
                f"`{other.name}`"
                for other in all_laws
                if other.applies_to(monoid) and other is not law and other not in checked
            ]
            if unchecked:
                why = (
                    f"but {', '.join(unchecked)} were not checked in this run (a monoid "
                    "that breaks them can also disagree in one method only)"
                )
            else:
                why = "and the monoid passed its other laws"
            lines += [
                f"Every disagreeing case runs the method {culprit!r}; the other methods "
                f"agree with the fold, {why}. The method is the likely culprit: check it "
                f"with scanalg.testing.check_method({culprit!r}).",
            ]
        key, a, b = failing[0]
        lines.append(f"First disagreeing case, {key}:")
    else:
        _, a, b = failing[0]
        lines += ["", "Both sides:"]
    size, description = error_size(a, b)
    if forbid_nan and has_nan((a, b)):
        description += "; a NaN appears although no input is NaN"
    error = max(error, size)
    lines += [_format_tree("lhs", a), _format_tree("rhs", b), "", f"Error: {description}."]
    lines.append(equality)
    return LawViolation(
        "\n".join(lines),
        monoid=monoid,
        law=law,
        inputs=inputs,
        lhs=lhs,
        rhs=rhs,
        error=error,
        method=culprit,
    )


# ------------------------------------------------------------------------ checking


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
                "`act` (its action_direction is None)."
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
    methods: Sequence[AbstractScanMethod | str] | None = None,
    max_examples: int | None = None,
    max_length: int = 7,
    equal: Callable[[PyTree, PyTree], bool] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    derandomize: bool | None = True,
) -> tuple[Law, ...]:
    r"""Check that `monoid` obeys its laws on inputs drawn by Hypothesis.

    The laws (see `scanalg.laws`): `associativity`, `left_identity`,
    `right_identity`, and when the monoid has an action, `action_identity`,
    `action_compatibility` (in its `action_direction`) and `action_input_agrees`;
    finally `scan_agrees_with_fold`: every method in `methods`, forward and reverse,
    inclusive and exclusive (and with `init` when the monoid acts), equals a plain
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
    - `states`: a strategy for states, needed when the monoid has an action.
    - `inputs`: for a monoid whose `lift` turns small inputs into elements, a strategy
      for those inputs, which `scan_agrees_with_fold` scans and `action_input_agrees`
      acts with. By default they are drawn from `elements` (fine when `lift` maps
      elements to elements).

    **Other arguments:**

    - `laws`: the laws to check, as `Law` objects or names; default all that apply.
    - `methods`: the scan methods `scan_agrees_with_fold` runs; default one of every
      registered method (`scan(..., method=name)`), as it is at the time of the call.
    - `max_examples`: examples per law; default the active Hypothesis profile's.
    - `max_length`: the (padded) sequence length of `scan_agrees_with_fold`.
    - `equal`: `equal(lhs, rhs) -> bool` to compare the sides. Default
      `scanalg.laws.allclose` (exact for integer leaves, a tolerance from the dtype
      for floating ones) on elements in normal form (`monoid.canonical`), so
      projective monoids need no equality of their own; and then a NaN in a law's
      result fails the law unless one of its inputs is NaN: never a silent NaN. Pass
      `equal=scanalg.laws.allclose` to compare raw sides and let NaN equal NaN.
    - `rtol`, `atol`: tolerances for the default `equal`.
    - `derandomize`: derandomize Hypothesis (the default); `None` follows the profile.

    **Returns:**

    The laws checked, as a tuple of `Law` objects.

    **Raises:**

    `LawViolation` (an `AssertionError`) naming the monoid, the law and its equation,
    with the shrunk inputs, both sides and the error (and the scan method, when all
    disagreeing cases run one method); `TypeError` when `combine`, `identity` or `act`
    change the structure, shapes or dtypes of their inputs (or return Python numbers
    instead of arrays), or the strategies draw inconsistent shapes; `ValueError` for
    inconsistent arguments.
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
    methods = registered_methods() if methods is None else tuple(as_method(m) for m in methods)
    selected = _select(monoid, laws)
    if states is None and any(law.needs_act for law in selected):
        raise ValueError(
            f"{type(monoid).__name__} defines `act`, so check_laws needs `states=` (a "
            "Hypothesis strategy for states) to check the action laws; or pass `laws=` "
            "without them."
        )
    use_states = states is not None and has_act(monoid)
    # The default equality compares normal forms, and fails a law whose sides contain
    # a NaN that no input had.
    default_equal = equal is None
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
    # Sequences for `scan_agrees_with_fold`: elements padded with the identity, or
    # exactly `max_length` of the given inputs (inputs cannot be padded).
    padded = inputs is None
    sequence_like, sequence_name = like, "elements"
    if not padded:
        sequence_like, sequence_name = _as_arrays(template(inputs), None, "", "inputs"), "inputs"
    # The monoid's own checks of a scan's inputs (e.g. dtypes), at trace time.
    jax.eval_shape(monoid.check_inputs, _tree.stack_one(sequence_like), state_like)
    check_signatures(monoid, like, state_like)
    if any(kind in ("sequence", "input") for law in selected for _, kind in law.draws):
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
            elif kind == "input":
                strategies.append(elements if padded else inputs)
                prepare.append(lambda x: _as_arrays(x, sequence_like, "an input", sequence_name))
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
                args.append(stack_on_host(items, sequence_like))
            lhs, rhs = _evaluate(law, monoid, tuple(args), n, options, default_equal)
            return args, n, lhs, rhs

        def fails(drawn, evaluate=evaluate):
            args, _, lhs, rhs = evaluate(drawn)
            return bool(failing_cases(equal, lhs, rhs, default_equal and not has_nan(args)))

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
        equality = equality_description(equal, rtol, atol, (lhs, rhs))
        forbid_nan = default_equal and not has_nan(args)
        failing = failing_cases(equal, lhs, rhs, forbid_nan)
        culprit = _culprit(law, monoid, methods, tuple(a for a in args if a is not None), failing)
        raise _violation(
            monoid, law, shown, notes, lhs, rhs, failing, equality, forbid_nan, culprit, selected
        )
    return selected
