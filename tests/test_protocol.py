"""The monoid protocol is declared: `action_direction` and `lifts` are read, never
detected; combinators forward `lift`, `act_input`, `canonical` and `check_inputs`;
bad inputs are named (`elems`, `init`) instead of failing deep inside JAX."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scanalg
from scanalg import monoids as M
from scanalg._monoid import has_act, has_lift
from scanalg.hmm import HMMForward, MaxPlus


class RunningMax(scanalg.AbstractMonoid):
    """README's example: only `combine` and `identity`."""

    def combine(self, earlier, later):
        return jnp.maximum(earlier, later)

    def identity(self, like):
        return jnp.full_like(like, -jnp.inf)


class AbstractAdd(scanalg.AbstractMonoid):
    def combine(self, earlier, later):
        return earlier + later

    def identity(self, like):
        return jnp.zeros_like(like)


class UndeclaredAct(AbstractAdd):
    def act(self, state, element):
        return state + element


class UndeclaredLift(AbstractAdd):
    def lift(self, x):
        return 2 * x


class DeclaredAct(UndeclaredAct):
    action_direction: ClassVar[str] = "both"


def test_declarations_default_only_without_the_method():
    m = RunningMax()
    assert m.action_direction is None and m.lifts is False
    assert not has_act(m) and not has_lift(m)
    np.testing.assert_array_equal(scanalg.scan(m, jnp.array([1.0, 3.0, 2.0])), [1, 3, 3])
    assert DeclaredAct().action_direction == "both" and has_act(DeclaredAct())
    assert M.Sum().action_direction == "both" and M.MatMul().action_direction == "forward"
    assert M.FiniteFunction().action_direction == "reverse"
    assert HMMForward().lifts and HMMForward().action_direction == "forward"


def test_undeclared_act_or_lift_fails_on_instantiation():
    # The class definition is fine (it could be an abstract base); making one is not.
    with pytest.raises(TypeError, match=r"UndeclaredAct defines `act` but does not declare "):
        UndeclaredAct()
    with pytest.raises(TypeError, match='add the class attribute `action_direction = "forward"`'):
        UndeclaredAct()
    with pytest.raises(TypeError, match=r"UndeclaredLift defines `lift` .* `lifts = True`"):
        UndeclaredLift()

    class BadDirection(UndeclaredAct):
        action_direction = "forwards"

    with pytest.raises(TypeError, match=r"BadDirection.action_direction must be 'forward'"):
        BadDirection()

    class DirectionWithoutAct(AbstractAdd):
        action_direction = "forward"

    with pytest.raises(TypeError, match="DirectionWithoutAct declares .* defines no `act`"):
        DirectionWithoutAct()

    class LiftsWithoutLift(AbstractAdd):
        lifts = True

    with pytest.raises(TypeError, match="LiftsWithoutLift declares `lifts = True`"):
        LiftsWithoutLift()


def test_a_default_is_not_a_declaration():
    """A base without `act` has no action; a subclass adding `act` must still declare
    its direction (the base's default does not count)."""
    assert AbstractAdd.__dict__["action_direction"] is None

    class Later(AbstractAdd):
        def act(self, state, element):
            return state + element

    with pytest.raises(TypeError, match="Later defines `act`"):
        Later()


class Shifted(scanalg.AbstractMonoid):
    """Addition whose `act_input` adds 100 (unlawful, to see who calls it)."""

    action_direction: ClassVar[str] = "both"

    def combine(self, earlier, later):
        return earlier + later

    def identity(self, like):
        return jnp.zeros_like(like)

    def act(self, state, element):
        return state + element

    def act_input(self, state, x):
        return state + x + 100


def test_combinators_forward_the_protocol():
    s, x = jnp.array(1.0), jnp.array(2.0)
    pair = M.Pair(Shifted(), M.Sum())
    assert pair.act_input((s, s), (x, x))[0] == 103 and pair.act_input((s, s), (x, x))[1] == 3
    assert M.Dual(Shifted()).act_input(s, x) == 103
    segmented = M.Segmented(Shifted(), reset=jnp.array(0.0))
    assert segmented.act_input(s, (jnp.array(False), x)) == 103
    assert segmented.act_input(s, (jnp.array(True), x)) == 102  # restarted from reset
    # Masked keeps invalid inputs away from `act_input`: it lifts and acts.
    assert M.Masked(Shifted()).act_input(s, (jnp.array(True), x)) == 3
    # `lifts` is the parts'.
    doubling = HMMForward(jnp.eye(2))
    assert M.Pair(M.Sum(), doubling).lifts and not M.Pair(M.Sum(), M.Max()).lifts
    assert M.Dual(doubling).lifts and M.Masked(doubling).lifts and M.Segmented(doubling).lifts
    # `canonical` reaches the parts: an HMM element in normal form.
    element = doubling.lift(jnp.array([1.0, 3.0]))
    want = doubling.canonical(element)
    np.testing.assert_allclose(want.log_scale, [-2.0, 0.0])
    for monoid, wrapped, unwrap in (
        (M.Pair(M.Sum(), doubling), (x, element), lambda e: e[1]),
        (M.Struct({"h": doubling}), {"h": element}, lambda e: e["h"]),
        (M.Dual(doubling), element, lambda e: e),
        (M.Segmented(doubling), (jnp.array(True), element), lambda e: e[1]),
        (M.Masked(doubling), (jnp.array(True), element), lambda e: e[1]),
    ):
        got = unwrap(monoid.canonical(wrapped))
        np.testing.assert_allclose(got.log_scale, want.log_scale)
        np.testing.assert_allclose(got.matrix, want.matrix)


def test_hmm_canonical_is_a_normal_form():
    a = jnp.array([[0.5, 0.5], [0.2, 0.8]])
    forward = HMMForward(a)
    x = forward.lift(jnp.array([-1.0, 2.0]))
    y = type(x)(3 * x.matrix, x.log_scale + 7)  # the same element, scaled
    cx, cy = forward.canonical(x), forward.canonical(y)
    np.testing.assert_allclose(cx.matrix, cy.matrix)
    np.testing.assert_allclose(cx.log_scale, cy.log_scale)
    np.testing.assert_allclose(cx.matrix.sum(-1), 1)
    assert float(jnp.max(cx.log_scale)) == 0
    dead = type(x)(x.matrix, jnp.array([-jnp.inf, 0.0]))  # a zero row
    np.testing.assert_array_equal(forward.canonical(dead).matrix[0], [0, 0])
    viterbi = MaxPlus(jnp.log(a))
    v = viterbi.lift(jnp.array([-1.0, 2.0]))
    w = type(v)(v.matrix + 5, v.offset - 2)
    cv, cw = viterbi.canonical(v), viterbi.canonical(w)
    np.testing.assert_allclose(cv.matrix, cw.matrix)
    np.testing.assert_allclose(cv.offset, cw.offset)
    assert float(jnp.max(cv.offset)) == 0 and np.allclose(jnp.max(cv.matrix, -1), 0)


# ---------------------------------------------------------- inputs, named


def test_logaddexp_needs_floats():
    with pytest.raises(TypeError, match=r"LogAddExp needs floating-point `elems`.*int"):
        scanalg.scan(M.LogAddExp(), jnp.arange(4))
    with pytest.raises(TypeError, match=r"LogAddExp needs floating-point `elems`"):
        scanalg.scan(M.Pair(M.Sum(), M.LogAddExp()), (jnp.zeros(3), jnp.arange(3)))
    with pytest.raises(TypeError, match=r"LogAddExp needs floating-point `elems`"):
        scanalg.scan(M.Masked(M.LogAddExp()), (jnp.ones(3, bool), jnp.arange(3)))


def test_init_that_does_not_fit_is_named():
    elems = jnp.ones((4, 3, 3))
    with pytest.raises(TypeError, match=r"MatMul.act\(init, element\) fails for `init`"):
        scanalg.scan(M.MatMul(), elems, init=jnp.ones(2))
    # A state of the wrong dtype: `init` is blamed, not `act`.
    with pytest.raises(TypeError, match=r"`init`.*float32") as info:
        scanalg.scan(M.MatMul(), elems, init=jnp.ones(3, jnp.float32))
    assert "changed the element" not in str(info.value)


def test_identity_returning_a_number_is_named():
    class NumberIdentity(AbstractAdd):
        def identity(self, like):
            return 0.0

    with pytest.raises(TypeError, match=r"NumberIdentity.identity\(like\).*Python number"):
        scanalg.scan(NumberIdentity(), jnp.zeros(3))


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_finite_function_indices_out_of_range(jit):
    run = eqx.filter_jit(scanalg.scan) if jit else scanalg.scan
    good = jnp.array([[0, 2, 1], [2, 1, 0]])
    bad = jnp.array([[0, 3, 1], [2, 1, 0]])
    np.testing.assert_array_equal(run(M.FiniteFunction(), good), [[0, 2, 1], [1, 2, 0]])
    with pytest.raises(Exception, match=r"FiniteFunction: `elems` has an entry outside \[0, K"):
        jax.block_until_ready(run(M.FiniteFunction(), bad))
    with pytest.raises(Exception, match=r"FiniteFunction: `init` has an entry outside \[0, K"):
        jax.block_until_ready(run(M.FiniteFunction(), good, init=jnp.array(-1), reverse=True))
    with pytest.raises(Exception, match=r"FiniteFunction: `elems` has an entry outside"):
        jax.block_until_ready(run(M.Segmented(M.FiniteFunction()), (jnp.ones(2, bool), bad)))
    # Invalid (masked) entries may be anything.
    garbage = jnp.array([[0, 2, 1], [9, -9, 9]])
    masked = run(M.Masked(M.FiniteFunction()), (jnp.array([True, False]), garbage))
    np.testing.assert_array_equal(masked[1], [[0, 2, 1], [0, 2, 1]])
    with pytest.raises(TypeError, match="FiniteFunction needs integer `elems`"):
        scanalg.scan(M.FiniteFunction(), good.astype(jnp.float32))
    # Declared in range by construction: no run-time check (and no error), the same
    # results for maps in range, and the dtype still checked at trace time.
    unchecked = M.FiniteFunction(check_range=False)
    np.testing.assert_array_equal(run(unchecked, good), run(M.FiniteFunction(), good))
    jax.block_until_ready(run(unchecked, bad))
    with pytest.raises(TypeError, match="FiniteFunction needs integer `elems`"):
        scanalg.scan(unchecked, good.astype(jnp.float32))


def test_empty_scan_of_a_lifting_monoid_returns_elements():
    forward = HMMForward(jnp.eye(2))
    out = scanalg.scan(forward, jnp.zeros((0, 2)))
    assert out.matrix.shape == (0, 2, 2) and out.log_scale.shape == (0, 2)
