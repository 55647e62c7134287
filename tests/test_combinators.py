"""Combinators: Pair, Struct, Dual, Segmented and Masked keep the laws, and compute
what they promise (per-segment scans, ignored invalid elements, reversed scans)."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import core_methods, tree_allclose

import scanalg
from scanalg import monoids as M, strategies as S
from scanalg.laws import check_laws, fold

# ----------------------------------------------------------------------------- cases


# name -> (monoid, element strategy, state strategy, a fixed state for `reset`)
BASIC = {
    "Sum": (M.Sum(), S.sum_elements((2,)), S.sum_elements((2,)), np.array([0.5, -1.5])),
    "Product": (M.Product(), S.product_elements(), S.product_elements(), np.array(1.5)),
    "Max": (M.Max(), S.max_elements((2,)), S.max_elements((2,)), np.array([0.0, -np.inf])),
    "Min": (M.Min(), S.min_elements(), S.min_elements(), np.array(2.0)),
    "LogAddExp": (
        M.LogAddExp(),
        S.logaddexp_elements((2,)),
        S.logaddexp_elements((2,)),
        np.array([0.0, -np.inf]),
    ),
    "MatMul": (M.MatMul(), S.matmul_elements(2), S.matmul_states(2), np.array([1.0, -0.5])),
    "Affine": (M.Affine(), S.affine_elements(2), S.affine_states(2), np.array([0.25, 1.0])),
    "FiniteFunction": (
        M.FiniteFunction(),
        S.finite_functions(3),
        S.finite_function_states(3),
        np.array(2, np.int32),
    ),
    "DiagonalAffine": (
        M.DiagonalAffine(),
        S.diagonal_affine_elements(3),
        S.diagonal_affine_states(3),
        np.array([1.0, 0.0, -1.0]),
    ),
}

NO_ACTION_LAWS = ("associativity", "left_identity", "right_identity")
ALL_BUT_SCAN = (*NO_ACTION_LAWS, "action_identity", "action_compatibility")


def _boundary(monoid):
    return "end" if monoid.action_direction == "reverse" else "start"


def combinator_case(kind, name):
    """(monoid, elements, states) for a combinator around the basic monoid `name`."""
    m, elements, states, reset = BASIC[name]
    if kind == "Pair":
        return (
            M.Pair(m, m),
            S.pair_elements(elements, elements),
            S.pair_elements(states, states),
        )
    if kind == "Struct":
        monoid = M.Struct((m, (m,)))
        return (
            monoid,
            S.struct_elements((elements, (elements,))),
            S.struct_elements((states, (states,))),
        )
    if kind == "Dual":
        return M.Dual(m), elements, states
    if kind == "Segmented":
        return (
            M.Segmented(m, reset=reset, boundary=_boundary(m)),
            S.segmented_elements(elements),
            states,
        )
    if kind == "Masked":
        return M.Masked(m), S.masked_elements(elements), states
    raise ValueError(kind)


KINDS = ("Pair", "Dual", "Segmented", "Masked")


@pytest.mark.parametrize("name", list(BASIC))
@pytest.mark.parametrize("kind", KINDS)
def test_combinator_laws(kind, name):
    """Associativity, identities and the action laws, for every basic monoid."""
    monoid, elements, states = combinator_case(kind, name)
    assert monoid.action_direction is not None
    checked = check_laws(monoid, elements, states=states, laws=ALL_BUT_SCAN, max_examples=8)
    assert len(checked) == len(ALL_BUT_SCAN)


SCAN_METHODS = core_methods


@pytest.mark.parametrize("name", ["MatMul", "FiniteFunction"])
@pytest.mark.parametrize("kind", (*KINDS, "Struct"))
def test_combinator_scan_agrees_with_fold(kind, name):
    """Every method, forward and reverse, inclusive and exclusive, with and without
    `init`, equals a fold (the laws of `Struct` are checked here too)."""
    monoid, elements, states = combinator_case(kind, name)
    laws = (
        ("scan_agrees_with_fold",) if kind != "Struct" else (*ALL_BUT_SCAN, "scan_agrees_with_fold")
    )
    check_laws(
        monoid,
        elements,
        states=states,
        laws=laws,
        methods=SCAN_METHODS,
        max_examples=5,
        max_length=5,
    )


def test_segmented_without_reset_is_lawful_without_action():
    m, elements, _, _ = BASIC["Affine"]
    monoid = M.Segmented(m)
    assert monoid.action_direction is None
    check_laws(monoid, S.segmented_elements(elements), laws=NO_ACTION_LAWS, max_examples=8)


def test_check_laws_catches_a_wrong_combinator():
    """Sanity: the law tests above can fail. Segmented with end flags is not a lawful
    *forward* action, and the checker says so."""
    m, elements, states, reset = BASIC["Sum"]

    class WrongSegmented(M.Segmented):
        @property
        def action_direction(self):
            return "forward"

    wrong = WrongSegmented(m, reset=reset, boundary="end")
    with pytest.raises(scanalg.laws.LawViolation, match="action_compatibility"):
        check_laws(
            wrong,
            S.segmented_elements(elements),
            states=states,
            laws=["action_compatibility"],
            max_examples=50,
        )


# ------------------------------------------------------------------------------ Dual


def _flip(tree):
    return jax.tree.map(lambda x: jnp.flip(x, axis=0), tree)


def _elems(name, n=9, seed=0):
    rng = np.random.default_rng(seed)
    if name == "MatMul":
        q, _ = np.linalg.qr(rng.normal(size=(n, 3, 3)))
        return jnp.asarray(q)
    if name == "FiniteFunction":
        return jnp.asarray(rng.integers(0, 4, size=(n, 4)), jnp.int32)
    if name == "Affine":
        q, _ = np.linalg.qr(rng.normal(size=(n, 3, 3)))
        return jnp.asarray(0.9 * q), jnp.asarray(rng.normal(size=(n, 3)))
    if name == "Sum":
        return jnp.asarray(rng.normal(size=(n, 2)))
    raise ValueError(name)


_INITS = {
    "MatMul": jnp.array([1.0, -2.0, 0.5]),
    "Affine": jnp.array([1.0, -2.0, 0.5]),
    "FiniteFunction": jnp.array(3, jnp.int32),
    "Sum": jnp.array([0.5, 1.0]),
}
_NONCOMMUTATIVE = {"MatMul": M.MatMul(), "Affine": M.Affine(), "FiniteFunction": M.FiniteFunction()}


# A loop and a parallel scan: the two structurally different ways to combine.
@pytest.mark.parametrize("method", [scanalg.Sequential(), scanalg.Parallel()], ids=repr)
@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("name", list(_NONCOMMUTATIVE))
def test_dual_is_reversed_reverse_scan(name, exclusive, method):
    r"""scan(Dual(m), x) == flip(scan(m, flip(x), reverse=True)), and with `reverse`
    swapped on both sides."""
    m = _NONCOMMUTATIVE[name]
    xs = _elems(name)
    scan = functools.partial(scanalg.scan, exclusive=exclusive, method=method)
    dual = scan(M.Dual(m), xs)
    assert tree_allclose(dual, _flip(scan(m, _flip(xs), reverse=True)))
    assert tree_allclose(scan(M.Dual(m), xs, reverse=True), _flip(scan(m, _flip(xs))))
    # ... and it is really different from the plain scan (the test could fail).
    assert not tree_allclose(dual, scan(m, xs))


@pytest.mark.parametrize("method", [scanalg.Sequential(), scanalg.Parallel()], ids=repr)
@pytest.mark.parametrize("name", list(_NONCOMMUTATIVE))
def test_dual_with_init(name, method):
    """The dual's action runs the other way: scan(Dual(m), x, init=s, reverse=r) ==
    flip(scan(m, flip(x), init=s, reverse=not r))."""
    m = _NONCOMMUTATIVE[name]
    xs, s = _elems(name), _INITS[name]
    forward = m.action_direction == "forward"
    assert M.Dual(m).action_direction == ("reverse" if forward else "forward")
    got = scanalg.scan(M.Dual(m), xs, init=s, reverse=forward, method=method)
    want = _flip(scanalg.scan(m, _flip(xs), init=s, reverse=not forward, method=method))
    assert tree_allclose(got, want)
    with pytest.raises(TypeError, match="action"):
        scanalg.scan(M.Dual(m), xs, init=s, reverse=not forward)


def test_dual_of_dual_and_of_commutative():
    xs = _elems("MatMul")
    assert tree_allclose(scanalg.scan(M.Dual(M.Dual(M.MatMul())), xs), scanalg.scan(M.MatMul(), xs))
    assert M.Dual(M.Sum()).action_direction == "both"
    assert M.Dual(M.Dual(M.FiniteFunction())).action_direction == "reverse"


# ------------------------------------------------------------------------- Segmented

# Agreement of all methods with a fold is checked by the laws above; these tests check
# what the combinators compute, on the two structurally different methods.
METHODS = (scanalg.Sequential(), scanalg.Parallel())
LENGTHS = (3, 1, 5, 2, 1, 4)  # 16 elements in 6 segments


def _starts(lengths):
    starts = np.zeros(sum(lengths), bool)
    starts[np.cumsum((0, *lengths[:-1]))] = True
    return jnp.asarray(starts)


def _ends(lengths):
    ends = np.zeros(sum(lengths), bool)
    ends[np.cumsum(lengths) - 1] = True
    return jnp.asarray(ends)


def _per_segment(fn, xs, lengths):
    """fn applied to every segment alone, results concatenated along time."""
    edges = np.cumsum((0, *lengths))
    parts = [fn(jax.tree.map(lambda x: x[a:b], xs)) for a, b in zip(edges[:-1], edges[1:])]
    return jax.tree.map(lambda *p: jnp.concatenate(p), *parts)


@pytest.mark.parametrize("method", METHODS, ids=repr)
@pytest.mark.parametrize("name", ["Affine", "FiniteFunction"])
def test_segmented_scans_each_segment(name, method):
    m = _NONCOMMUTATIVE[name]
    xs = _elems(name, n=sum(LENGTHS))
    starts, ends = _starts(LENGTHS), _ends(LENGTHS)
    # Forward, start flags.
    flag, got = scanalg.scan(M.Segmented(m), (starts, xs), method=method)
    assert np.all(flag)
    want = _per_segment(lambda x: fold(m, x), xs, LENGTHS)
    assert tree_allclose(got, want)
    # Reverse, end flags.
    flag, got = scanalg.scan(
        M.Segmented(m, boundary="end"), (ends, xs), reverse=True, method=method
    )
    want = _per_segment(lambda x: fold(m, x, reverse=True), xs, LENGTHS)
    assert tree_allclose(got, want)
    assert np.all(flag)
    # The total of a segmented reduce is the last segment's product.
    _, total = scanalg.reduce(M.Segmented(m), (starts, xs), method=method)
    assert tree_allclose(total, scanalg.reduce(m, jax.tree.map(lambda x: x[-4:], xs)))


@pytest.mark.parametrize("method", METHODS, ids=repr)
@pytest.mark.parametrize("name", ["Affine", "FiniteFunction"])
def test_segmented_with_reset(name, method):
    """Every segment restarts from `reset`: the states are those of each segment's own
    scan with init=reset; an unflagged first segment continues from `init`."""
    m = _NONCOMMUTATIVE[name]
    xs, reset = _elems(name, n=sum(LENGTHS)), _INITS[name]
    if m.action_direction == "reverse":
        flags_, boundary, reverse = _ends(LENGTHS), "end", True
    else:
        flags_, boundary, reverse = _starts(LENGTHS), "start", False
    seg = M.Segmented(m, reset=reset, boundary=boundary)
    assert seg.action_direction == ("reverse" if reverse else "forward")
    got = scanalg.scan(seg, (flags_, xs), init=reset, reverse=reverse, method=method)
    want = _per_segment(
        lambda x: fold(m, x, init=reset, reverse=reverse),
        xs,
        LENGTHS,
    )
    assert tree_allclose(got, want)
    # Exclusive: the state before each step. At a flagged step that is the state the
    # scan arrives with (the other segment's); the segment itself starts from `reset`.
    before = scanalg.scan(
        seg, (flags_, xs), init=reset, reverse=reverse, exclusive=True, method=method
    )
    fix = jax.tree.map(
        lambda b, r: jnp.where(flags_.reshape((-1,) + (1,) * r.ndim), r, b), before, reset
    )
    want = _per_segment(
        lambda x: fold(m, x, init=reset, reverse=reverse, exclusive=True),
        xs,
        LENGTHS,
    )
    assert tree_allclose(fix, want)
    # A first segment without a flag continues from `init` instead of `reset`.
    other = jnp.zeros_like(reset) if name != "FiniteFunction" else jnp.array(0, jnp.int32)
    unflagged = flags_.at[-1 if reverse else 0].set(False)
    got = scanalg.scan(seg, (unflagged, xs), init=other, reverse=reverse, method=method)
    n0 = LENGTHS[-1] if reverse else LENGTHS[0]
    part = jax.tree.map(lambda x: x[-n0:] if reverse else x[:n0], xs)
    want = fold(m, part, init=other, reverse=reverse)
    assert tree_allclose(jax.tree.map(lambda x: x[-n0:] if reverse else x[:n0], got), want)


def test_segmented_integer_flags_and_elementwise():
    xs = jnp.arange(8.0)
    starts = jnp.array([1, 0, 0, 1, 0, 1, 0, 0], jnp.int32)
    flag, got = scanalg.scan(M.Segmented(M.Sum()), (starts, xs))
    assert flag.dtype == jnp.int32
    np.testing.assert_array_equal(got, [0, 1, 3, 3, 7, 5, 11, 18])
    got = scanalg.scan(M.Segmented(M.Sum(), reset=10.0), (starts, xs), init=0.0)
    np.testing.assert_array_equal(got, [10, 11, 13, 13, 17, 15, 21, 28])


def test_segmented_action_errors():
    xs = (jnp.array([True, False]), jnp.ones((2, 2)))
    with pytest.raises(TypeError, match="has no lawful `act`"):
        scanalg.scan(M.Segmented(M.Sum()), xs, init=jnp.zeros(2))
    with pytest.raises(TypeError, match="needs a `reset` state"):
        M.Segmented(M.Sum()).act(jnp.zeros(2), (jnp.array(True), jnp.ones(2)))
    ff = (jnp.array([True, False]), jnp.zeros((2, 3), jnp.int32))
    seg = M.Segmented(M.FiniteFunction(), reset=jnp.array(0, jnp.int32))  # start flags
    assert seg.action_direction is None
    with pytest.raises(TypeError, match="forward action of FiniteFunction"):
        seg.act(jnp.array(0, jnp.int32), (jnp.array(True), jnp.zeros(3, jnp.int32)))
    with pytest.raises(TypeError):
        scanalg.scan(seg, ff, init=jnp.array(0, jnp.int32), reverse=True)
    with pytest.raises(ValueError, match="boundary"):
        M.Segmented(M.Sum(), boundary="middle")
    with pytest.raises(ValueError, match="scalar"):
        scanalg.scan(M.Segmented(M.Sum()), (jnp.ones((2, 2), bool), jnp.ones((2, 2))))


# ---------------------------------------------------------------------------- Masked


@pytest.mark.parametrize("method", METHODS, ids=repr)
def test_masked_ignores_invalid(method):
    rng = np.random.default_rng(1)
    n = 13
    xs = _elems("Affine", n=n)
    valid = jnp.asarray(rng.random(n) < 0.6).at[0].set(False).at[5].set(True)
    idx = np.flatnonzero(np.asarray(valid))
    compact = jax.tree.map(lambda x: x[idx], xs)
    # Products of the valid elements so far, wherever one has been seen.
    flag, got = scanalg.scan(M.Masked(M.Affine()), (valid, xs), method=method)
    seen = np.cumsum(np.asarray(valid)) > 0
    np.testing.assert_array_equal(flag, seen)
    want = scanalg.scan(M.Affine(), compact, method="sequential")
    at = np.cumsum(np.asarray(valid))[seen] - 1
    assert tree_allclose(jax.tree.map(lambda x: x[seen], got), jax.tree.map(lambda x: x[at], want))
    # With init, invalid values may be NaN: states only change at valid steps.
    keep = valid.reshape((n, 1, 1))
    nan_xs = (jnp.where(keep, xs[0], jnp.nan), jnp.where(keep[:, 0], xs[1], jnp.nan))
    h0 = _INITS["Affine"]
    states = scanalg.scan(M.Masked(M.Affine()), (valid, nan_xs), init=h0, method=method)
    assert np.all(np.isfinite(states))
    compact_states = scanalg.scan(M.Affine(), compact, init=h0, method="sequential")
    last = np.cumsum(np.asarray(valid)) - 1  # index of the last valid element so far
    expect = jnp.where(seen[:, None], compact_states[np.maximum(last, 0)], h0)
    assert tree_allclose(states, expect)

    # Gradients of the valid values are those of the valid-only scan (the NaNs of the
    # invalid values do not leak into them).
    def loss(b, valid, a):
        out = scanalg.scan(M.Masked(M.Affine()), (valid, (a, b)), init=h0, method=method)
        return jnp.sum(jnp.sin(out[seen]))

    def compact_loss(b):
        out = scanalg.scan(M.Affine(), (compact[0], b), init=h0, method="sequential")
        return jnp.sum(jnp.sin(out[np.maximum(last, 0)[seen]]))

    grad = jax.grad(loss)(nan_xs[1], valid, nan_xs[0])
    assert tree_allclose(grad[idx], jax.grad(compact_loss)(compact[1]))


def test_masked_canonical_and_no_action():
    m = M.Masked(M.MatMul())
    valid, x = m.canonical((jnp.array(False), jnp.full((2, 2), jnp.nan)))
    assert not valid
    np.testing.assert_array_equal(x, jnp.eye(2))

    class NoAct(scanalg.AbstractMonoid):
        def combine(self, a, b):
            return a + b

        def identity(self, like):
            return jnp.zeros_like(like)

    for monoid in (M.Masked(NoAct()), M.Dual(NoAct()), M.Pair(NoAct(), M.Sum())):
        assert monoid.action_direction is None
        with pytest.raises(TypeError, match="no lawful `act`"):
            monoid.act(jnp.zeros(()), jax.tree.map(jnp.zeros_like, _like(monoid)))


def _like(monoid):
    if isinstance(monoid, M.Masked):
        return (jnp.array(True), jnp.zeros(()))
    if isinstance(monoid, M.Pair):
        return (jnp.zeros(()), jnp.zeros(()))
    return jnp.zeros(())


# ------------------------------------------------------------------- Pair and Struct


def test_pair_and_struct_scan_componentwise():
    xs = jnp.array([3.0, -1.0, 4.0, 1.0, -5.0])
    total, peak = scanalg.scan(M.Pair(M.Sum(), M.Max()), (xs, xs))
    np.testing.assert_array_equal(total, jnp.cumsum(xs))
    np.testing.assert_array_equal(peak, jax.lax.cummax(xs))
    monoid = M.Struct({"total": M.Sum(), "low": M.Min(), "nested": [M.Product()]})
    out = scanalg.scan(monoid, {"total": xs, "low": xs, "nested": [xs]}, method="parallel")
    np.testing.assert_allclose(out["total"], jnp.cumsum(xs))
    np.testing.assert_array_equal(out["low"], jax.lax.cummin(xs))
    np.testing.assert_allclose(out["nested"][0], jnp.cumprod(xs))
    # Element structure must follow the monoids' container.
    with pytest.raises((ValueError, TypeError)):
        scanalg.scan(monoid, {"total": xs, "low": xs})


def test_struct_action_directions():
    ff, mm, s = M.FiniteFunction(), M.MatMul(), M.Sum()
    assert M.Pair(s, s).action_direction == "both"
    assert M.Pair(mm, s).action_direction == "forward"
    assert M.Struct((ff, s, s)).action_direction == "reverse"
    mixed = M.Pair(mm, ff)
    assert mixed.action_direction is None
    with pytest.raises(TypeError, match="MatMul: forward, FiniteFunction: reverse"):
        mixed.act((jnp.zeros(2), jnp.array(0)), (jnp.eye(2), jnp.arange(2)))
    assert M.Pair(mm, M.Dual(ff)).action_direction == "forward"


@pytest.mark.parametrize(
    "make, name, field",
    [
        (lambda x: M.Pair(M.Sum(), x), re.escape("Pair(second=...)"), "second"),
        (lambda x: M.Pair(x, M.Sum()), re.escape("Pair(first=...)"), "first"),
        (lambda x: M.Dual(x), re.escape("Dual(monoid=...)"), "monoid"),
        (lambda x: M.Segmented(x), re.escape("Segmented(monoid=...)"), "monoid"),
        (lambda x: M.Masked(x), re.escape("Masked(monoid=...)"), "monoid"),
        (lambda x: M.Struct({"a": M.Sum(), "b": [x]}), r"\['b'\]\[0\]", "monoids"),
    ],
)
def test_non_monoid_is_a_type_error(make, name, field):
    # Named by the combinator, or (with jaxtyping's runtime checks on) by the
    # type checker of its `__init__`, which runs first.
    pattern = f"{name}|typechecking parameter '{field}'"
    for bad in (jnp.add, 3, M.Sum):
        with pytest.raises(TypeError, match=pattern):
            make(bad)


class _Doubled(scanalg.AbstractMonoid):
    """Addition, scanned from inputs that `lift` doubles (a monoid with a `lift`)."""

    lifts = True

    def combine(self, earlier, later):
        return earlier + later

    def identity(self, like):
        return jnp.zeros_like(like)

    def lift(self, x):
        return 2 * x


@pytest.mark.parametrize("method", METHODS, ids=repr)
def test_lift_passes_through(method):
    xs = jnp.array([1.0, 2.0, -1.0, 4.0])
    flags_ = jnp.array([True, False, True, False])
    m = _Doubled()
    scan = functools.partial(scanalg.scan, method=method)
    twice = 2 * jnp.cumsum(xs)
    np.testing.assert_allclose(scan(M.Pair(m, M.Sum()), (xs, xs))[0], twice)
    np.testing.assert_allclose(scan(M.Struct([m]), [xs])[0], twice)
    np.testing.assert_allclose(scan(M.Dual(m), xs), twice)
    np.testing.assert_allclose(scan(M.Segmented(m), (flags_, xs))[1], [2, 6, -2, 6])
    np.testing.assert_allclose(scan(M.Masked(m), (flags_, xs))[1], [2, 2, 0, 0])
