"""The law checker: laws as objects, `check_laws` on lawful and broken monoids,
`scanalg.strategies`."""

import functools
import os
import subprocess
import sys
import textwrap
from typing import ClassVar

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import tree_allclose

import scanalg
from scanalg import laws, monoids as M, strategies as S
from scanalg.hmm import HMMForward, ScaledMatrix

# ------------------------------------------------------------------ broken monoids


class ClippedSum(scanalg.AbstractMonoid):
    """Not associative: clip(clip(1 + 1) - 1) = 0 but clip(1 + clip(1 - 1)) = 1."""

    def combine(self, earlier, later):
        return jnp.clip(earlier + later, -1.0, 1.0)

    def identity(self, like):
        return jnp.zeros_like(like)


class WrongIdentity(scanalg.AbstractMonoid):
    """Addition with identity 1."""

    def combine(self, earlier, later):
        return earlier + later

    def identity(self, like):
        return jnp.ones_like(like)


class ShiftingAct(scanalg.AbstractMonoid):
    """Addition whose action adds one too many: act(s, 0) = s + 1."""

    action_direction: ClassVar[str] = "both"

    def combine(self, earlier, later):
        return earlier + later

    def identity(self, like):
        return jnp.zeros_like(like)

    def act(self, state, element):
        return state + element + 1.0


class ForwardEvaluation(scanalg.AbstractMonoid):
    """Composition of maps [K] -> [K] with evaluation declared a *forward* action
    (it is a reverse one)."""

    action_direction: ClassVar[str] = "forward"

    def combine(self, earlier, later):
        return earlier[later]

    def identity(self, like):
        return jnp.arange(like.shape[-1], dtype=like.dtype)

    def act(self, state, element):
        return element[state]


class BothMatMul(scanalg.AbstractMonoid):
    """Matrix product whose row-vector action claims to work in both directions."""

    action_direction: ClassVar[str] = "both"

    def combine(self, earlier, later):
        return earlier @ later

    def identity(self, like):
        return jnp.eye(like.shape[-1], dtype=like.dtype)

    def act(self, state, element):
        return state @ element


class WrongOrder(scanalg.AbstractScanMethod):
    """A broken scan method: time-reversed, so prefixes come out as suffixes."""

    combines_with_init: ClassVar[bool] = True

    def prefix(self, monoid, elems, reverse):
        return scanalg.Sequential().prefix(monoid, elems, not reverse)

    def total(self, monoid, elems):
        return scanalg.Sequential().total(monoid, elems)


class Moments(scanalg.AbstractMonoid):
    """Sums of (1, x, x^2), lifted from scalar inputs x: scans read T numbers, not 3T."""

    lifts: ClassVar[bool] = True

    def lift(self, x):
        return jnp.ones_like(x), x, x * x

    def combine(self, earlier, later):
        return jax.tree.map(jnp.add, earlier, later)

    def identity(self, like):
        return jax.tree.map(jnp.zeros_like, like)


class ChangesDtype(scanalg.AbstractMonoid):
    def combine(self, earlier, later):
        return (earlier + later).astype(jnp.float32)

    def identity(self, like):
        return jnp.zeros_like(like)


class DictSum(scanalg.AbstractMonoid):
    """Componentwise addition of dict elements `{"a": ..., "b": ...}`, acting on dict
    states in both directions."""

    action_direction: ClassVar[str] = "both"

    def combine(self, earlier, later):
        return {k: earlier[k] + later[k] for k in earlier}

    def identity(self, like):
        return {k: jnp.zeros_like(v) for k, v in like.items()}

    def act(self, state, element):
        return {k: state[k] + element[k] for k in state}


class DictClippedSum(DictSum):
    """`DictSum` whose `"b"` entry is clipped to [-1, 1]: not associative."""

    def combine(self, earlier, later):
        out = super().combine(earlier, later)
        return {**out, "b": jnp.clip(out["b"], -1.0, 1.0)}


class ListSum(scanalg.AbstractMonoid):
    """Componentwise addition of list elements `[x, y]`."""

    def combine(self, earlier, later):
        return [x + y for x, y in zip(earlier, later)]

    def identity(self, like):
        return [jnp.zeros_like(x) for x in like]


# ------------------------------------------------------------- lawful built-ins

builtin_cases = [
    ("Sum", M.Sum(), S.sum_elements((2,)), S.sum_elements((2,))),
    ("Sum-int32", M.Sum(), S.sum_elements((), np.int32), None),
    ("Product-f32", M.Product(), S.product_elements((), np.float32), None),
    ("Max", M.Max(), S.max_elements(()), None),
    ("Min-int32", M.Min(), S.min_elements((), np.int32), None),
    ("LogAddExp", M.LogAddExp(), S.logaddexp_elements((2,)), None),
    ("MatMul", M.MatMul(), S.matmul_elements(3), S.matmul_states(3)),
    ("MatMul-f32", M.MatMul(), S.matmul_elements(3, np.float32), None),
    ("Affine", M.Affine(), S.affine_elements(3), S.affine_states(3)),
    ("FiniteFunction", M.FiniteFunction(), S.finite_functions(5), S.finite_function_states(5)),
]


@pytest.mark.parametrize(
    "monoid, elements, states", [c[1:] for c in builtin_cases], ids=[c[0] for c in builtin_cases]
)
def test_builtin_monoids_are_lawful(monoid, elements, states):
    if states is None:  # the action laws of each kind of `act` are checked once, for speed
        chosen = ("associativity", "left_identity", "right_identity", "scan_agrees_with_fold")
        checked = scanalg.check_laws(monoid, elements, laws=chosen, max_examples=30)
    else:
        checked = scanalg.check_laws(monoid, elements, states=states, max_examples=30)
        assert laws.action_compatibility in checked
    assert laws.scan_agrees_with_fold in checked


def test_dict_and_list_structured_monoids():
    """Elements, states and monoid fields may be dicts and lists (regression: they were
    unhashable static arguments of the jitted law evaluation)."""
    dicts = st.fixed_dictionaries({"a": S.sum_elements((2,)), "b": S.sum_elements(())})
    checked = scanalg.check_laws(DictSum(), dicts, states=dicts, max_examples=10)
    assert checked == laws.all_laws
    lists = st.lists(S.sum_elements(()), min_size=2, max_size=2)
    assert laws.scan_agrees_with_fold in scanalg.check_laws(ListSum(), lists, max_examples=5)
    struct = M.Struct({"s": M.Sum(), "m": [M.Max()]})
    struct_elements = S.struct_elements({"s": S.sum_elements((2,)), "m": [S.max_elements()]})
    checked = scanalg.check_laws(
        struct,
        struct_elements,
        states=struct_elements,
        laws=["associativity", "scan_agrees_with_fold"],
        max_examples=5,
    )
    assert checked == (laws.associativity, laws.scan_agrees_with_fold)

    err = _violation(DictClippedSum(), dicts, states=dicts, max_examples=50)
    assert err.law is laws.associativity
    message = str(err)
    # A dict element is compared as a whole, not split into "cases" by its keys.
    assert "cases disagree" not in message and "Both sides:" in message
    assert "    lhs['b'] = array(" in message and "    c['a'] = array(" in message
    assert tree_allclose(err.lhs["a"], err.rhs["a"])
    assert float(abs(err.lhs["b"] - err.rhs["b"])) == err.error > 0


# ------------------------------------------------------------ violations are caught


def _violation(*args, **kwargs) -> scanalg.LawViolation:
    with pytest.raises(scanalg.LawViolation) as info:
        scanalg.check_laws(*args, **kwargs)
    return info.value


def test_catches_non_associative_combine():
    err = _violation(ClippedSum(), S.sum_elements(bound=1.0))
    message = str(err)
    assert isinstance(err, AssertionError)
    assert err.law is laws.associativity
    for text in (
        "ClippedSum()",
        "`associativity`",
        "combine(combine(a, b), c) == combine(a, combine(b, c))",
        "Shrunk counterexample",
        "    a = array(",
        "    b = array(",
        "    c = array(",
        "lhs = array(",
        "rhs = array(",
        "Error: max |lhs - rhs| = ",
    ):
        assert text in message, text
    # The reported inputs really violate the law, and were shrunk to simple values.
    lhs, rhs = laws.associativity(ClippedSum(), err.inputs["a"], err.inputs["b"], err.inputs["c"])
    assert not laws.allclose(lhs, rhs)
    assert tree_allclose((lhs, rhs), (err.lhs, err.rhs))
    assert err.error == pytest.approx(float(abs(lhs - rhs)))
    assert {float(err.inputs[k]) for k in "abc"} <= {-1.0, 0.0, 1.0}


def test_catches_wrong_identity():
    err = _violation(WrongIdentity(), S.sum_elements((2,)))
    assert err.law is laws.left_identity
    assert "WrongIdentity()" in str(err)
    assert "combine(identity(a), a) == a" in str(err)
    np.testing.assert_array_equal(err.inputs["a"], np.zeros(2))  # shrunk
    assert err.error == 1.0


def test_catches_act_without_identity():
    err = _violation(ShiftingAct(), S.sum_elements(), states=S.sum_elements())
    assert err.law is laws.action_identity
    for text in ("ShiftingAct()", "act(s, identity(a)) == s", "    s = array(", "    a = array("):
        assert text in str(err), text


def test_catches_act_in_the_wrong_direction():
    err = _violation(ForwardEvaluation(), S.finite_functions(4), states=S.finite_function_states(4))
    assert err.law is laws.action_compatibility
    assert "act(act(s, a), b) == act(s, combine(a, b))" in str(err)
    assert "entries differ" in str(err)
    s, a, b = (err.inputs[k] for k in "sab")
    assert int(b[a[s]]) != int(a[b[s]])


def test_catches_act_claiming_both_directions():
    err = _violation(
        BothMatMul(),
        S.matmul_elements(2),
        states=S.matmul_states(2),
        laws=[laws.action_identity, laws.action_compatibility],
    )
    assert err.law is laws.action_compatibility
    assert "1 of 2 cases disagree: reverse" in str(err)
    assert "and act(act(s, b), a) == act(s, combine(a, b))" in str(err)


def test_catches_a_broken_scan_method():
    err = _violation(
        M.MatMul(),
        S.matmul_elements(2),
        laws=["scan_agrees_with_fold"],
        methods=(scanalg.Sequential(), WrongOrder()),
    )
    message = str(err)
    assert err.law is laws.scan_agrees_with_fold
    assert "WrongOrder() forward inclusive" in message
    assert "Sequential() forward inclusive" not in message
    assert "drawn elements, then" in message and "    xs = array(" in message
    assert err.inputs["xs"].shape == (7, 2, 2)
    # Only WrongOrder disagrees with the fold: it is blamed, by name.
    assert err.method == WrongOrder()
    assert "Every disagreeing case runs the method WrongOrder()" in message
    assert "were not checked in this run" in message  # only one law was checked
    assert "scanalg.testing.check_method(WrongOrder())" in message


class AlsoWrong(WrongOrder):
    """Another broken method, broken in the same way."""


def test_blame_needs_one_method():
    err = _violation(
        M.MatMul(),
        S.matmul_elements(2),
        laws=["scan_agrees_with_fold"],
        methods=(scanalg.Sequential(), WrongOrder(), AlsoWrong()),
    )
    assert err.method is None and "Every disagreeing case runs" not in str(err)
    assert "AlsoWrong() forward inclusive" in str(err)
    assert "WrongOrder() forward inclusive" in str(err)
    # A monoid at fault can look like a method at fault when its laws are not checked:
    # the report says which were not.
    err = _violation(
        ForwardEvaluation(),
        S.finite_functions(4),
        states=S.finite_function_states(4),
        laws=["scan_agrees_with_fold"],
        methods=(scanalg.Sequential(), scanalg.Parallel()),
    )
    assert err.method == scanalg.Parallel()
    assert "`action_compatibility`" in str(err) and "were not checked in this run" in str(err)


def test_nan_fails_a_law_unless_allowed():
    # inf + (-inf) is NaN on both sides of associativity: equal as NaNs, but a NaN that
    # no input had fails the law under the default equality.
    infinite = S.arrays((), min_value=-1.0, max_value=1.0, extra=st.sampled_from([np.inf, -np.inf]))
    err = _violation(M.Sum(), infinite, laws=["associativity"])
    assert "a NaN appears although no input is NaN" in str(err)
    assert np.isnan(err.lhs) and np.isnan(err.rhs)
    scanalg.check_laws(M.Sum(), infinite, laws=["associativity"], equal=laws.allclose)


def test_monoids_with_lift_scan_their_inputs():
    elements = st.tuples(*(S.sum_elements(bound=5.0) for _ in range(3)))
    scalars = S.sum_elements(bound=5.0)
    checked = scanalg.check_laws(Moments(), elements, inputs=scalars, max_examples=20)
    assert laws.scan_agrees_with_fold in checked
    with pytest.raises(ValueError, match="Pass `inputs=`"):
        scanalg.check_laws(Moments(), elements)
    # The fold lifts too.
    xs = jnp.array([1.0, 2.0, 3.0])
    count, total, squares = laws.fold(Moments(), xs)
    assert tree_allclose(
        (count, total, squares), (jnp.arange(1.0, 4), jnp.cumsum(xs), jnp.cumsum(xs**2))
    )


def test_custom_equality_and_tolerances():
    # An equality that accepts everything accepts the clipped sum.
    clipped = (ClippedSum(), S.sum_elements(bound=1.0))
    scanalg.check_laws(*clipped, laws=["associativity"], equal=lambda x, y: True)
    # A tolerance wider than the error does too; a narrow one does not.
    scanalg.check_laws(*clipped, laws=["associativity"], max_examples=50, atol=1.5)
    with pytest.raises(scanalg.LawViolation, match="atol=0.1"):
        scanalg.check_laws(*clipped, laws=["associativity"], atol=0.1)
    with pytest.raises(scanalg.LawViolation, match=r"equal=.*\.exact"):

        def exact(x, y):
            return bool(jnp.all(x == y))

        scanalg.check_laws(ClippedSum(), S.sum_elements(bound=1.0), equal=exact)


def test_max_examples_is_respected():
    drawn = []
    elements = S.sum_elements().map(lambda x: drawn.append(x) or x)
    scanalg.check_laws(M.Sum(), elements, laws=["left_identity"], max_examples=7)
    assert 7 <= len(drawn) <= 9  # the examples, plus one draw for the signature
    drawn.clear()
    scanalg.check_laws(M.Sum(), elements, laws=["left_identity"])  # the profile's default
    assert len(drawn) >= min(50, hypothesis.settings().max_examples)


def test_bad_arguments():
    sums = S.sum_elements()
    with pytest.raises(ValueError, match="states="):
        scanalg.check_laws(M.Sum(), sums)
    with pytest.raises(TypeError, match="defines no `act`"):
        scanalg.check_laws(ClippedSum(), sums, laws=["action_identity"], states=sums)
    with pytest.raises(ValueError, match="valid names are"):
        scanalg.check_laws(M.Sum(), sums, laws=["commutativity"])
    with pytest.raises(ValueError, match="not both"):
        scanalg.check_laws(M.Sum(), sums, states=sums, equal=laws.allclose, rtol=1e-3)
    with pytest.raises(TypeError, match="Hypothesis strategy"):
        scanalg.check_laws(M.Sum(), jnp.zeros(3))
    with pytest.raises(TypeError, match="ChangesDtype"):
        scanalg.check_laws(ChangesDtype(), sums)
    varying = st.integers(1, 3).flatmap(lambda n: S.sum_elements((n,)))
    with pytest.raises(TypeError, match="same structure, shapes and dtypes"):
        scanalg.check_laws(M.Sum(), varying, laws=["associativity"])


def test_works_in_a_plain_script(tmp_path):
    script = tmp_path / "check.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys

            import jax.numpy as jnp
            import numpy as np
            import scanalg

            assert "hypothesis" not in sys.modules  # only check_laws and strategies need it
            from scanalg import strategies as S

            class ClippedSum(scanalg.AbstractMonoid):
                def combine(self, earlier, later):
                    return jnp.clip(earlier + later, -1.0, 1.0)
                def identity(self, like):
                    return jnp.zeros_like(like)

            lawful = ("associativity", "left_identity", "right_identity")
            scanalg.check_laws(scanalg.monoids.Sum(), S.sum_elements((), np.float32), laws=lawful)
            try:
                scanalg.check_laws(ClippedSum(), S.sum_elements((), np.float32, bound=1.0))
            except scanalg.LawViolation as e:
                print(e)
            else:
                raise SystemExit("no violation found")
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPOTHESIS")}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "ClippedSum() violates the law `associativity`" in out.stdout
    assert "dtype=float32" in out.stdout and "c = array(" in out.stdout


# ------------------------------------------------------------------- law objects


def test_law_objects_directly():
    assert [law.name for law in laws.all_laws] == [
        "associativity",
        "left_identity",
        "right_identity",
        "action_identity",
        "action_compatibility",
        "action_input_agrees",
        "scan_agrees_with_fold",
    ]
    assert laws.associativity.draws == (("a", "element"), ("b", "element"), ("c", "element"))
    assert scanalg.associativity is laws.associativity

    lhs, rhs = laws.associativity(M.Sum(), 1.0, 2.0, 3.0)
    assert float(lhs) == float(rhs) == 6.0
    lhs, rhs = laws.associativity(ClippedSum(), 1.0, 1.0, -1.0)
    assert (float(lhs), float(rhs)) == (0.0, 1.0)

    a = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    for law in (laws.left_identity, laws.right_identity):
        lhs, rhs = law(M.MatMul(), a)
        assert tree_allclose(lhs, rhs) and tree_allclose(rhs, a)
    lhs, rhs = laws.left_identity(WrongIdentity(), 0.0)
    assert (float(lhs), float(rhs)) == (1.0, 0.0)

    element = (a / 5, jnp.array([1.0, -1.0]))
    lhs, rhs = laws.action_identity(M.Affine(), jnp.array([0.5, 2.0]), element)
    assert tree_allclose(lhs, rhs)
    assert not laws.action_identity.applies_to(ClippedSum())

    f, g, s = jnp.array([1, 2, 0]), jnp.array([0, 0, 1]), jnp.array(2)
    lhs, rhs = laws.action_compatibility(M.FiniteFunction(), s, f, g)
    assert int(lhs) == int(rhs) == int(f[g[s]])
    reverse_eq = "act(act(s, b), a) == act(s, combine(a, b))"
    assert laws.action_compatibility.equation_for(M.FiniteFunction()) == reverse_eq
    lhs, rhs = laws.action_compatibility(ForwardEvaluation(), s, f, g)
    assert int(lhs) != int(rhs)
    lhs, rhs = laws.action_compatibility(M.Sum(), 1.0, 2.0, 3.0)
    assert set(lhs) == set(rhs) == {"forward", "reverse"}


def test_scan_agrees_with_fold_directly():
    xs = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, size=(5, 2, 2)))
    s = jnp.array([1.0, -2.0])
    methods = (scanalg.Sequential(), scanalg.Blocked(block_size=2), scanalg.Auto())
    law = functools.partial(laws.scan_agrees_with_fold, M.MatMul(), methods=methods)
    lhs, rhs = jax.jit(law)(xs, s)
    # 3 methods x (2 directions x 2) without init + 3 x (forward only x 2) with init.
    assert len(lhs) == 18 and lhs.keys() == rhs.keys()
    assert (
        "Auto() reverse exclusive" in lhs and "Blocked(block_size=2) forward inclusive init" in lhs
    )
    assert not any("reverse" in k and k.endswith("init") for k in lhs)
    assert all(tree_allclose(lhs[k], rhs[k]) for k in lhs)
    lhs, rhs = laws.scan_agrees_with_fold(M.MatMul(), xs[:3], methods=(WrongOrder(),))
    assert not tree_allclose(
        lhs["WrongOrder() forward inclusive"], rhs["WrongOrder() forward inclusive"]
    )


def test_fold_reference():
    xs = jnp.array([1.0, 2.0, 3.0, 4.0])
    fold = laws.fold
    assert tree_allclose(fold(M.Sum(), xs), jnp.cumsum(xs))
    assert tree_allclose(fold(M.Sum(), xs, reverse=True), jnp.cumsum(xs[::-1])[::-1])
    assert tree_allclose(fold(M.Sum(), xs, exclusive=True), jnp.array([0.0, 1.0, 3.0, 6.0]))
    assert tree_allclose(
        fold(M.Sum(), xs, init=10.0, reverse=True, exclusive=True),
        jnp.array([19.0, 17.0, 14.0, 10.0]),
    )
    assert fold(M.Sum(), xs[:0]).shape == (0,)
    assert fold(M.MatMul(), jnp.zeros((0, 2, 2)), init=jnp.ones(2)).shape == (0, 2)


def test_allclose_and_tolerance():
    assert laws.tolerance(jnp.float64)[0] == pytest.approx(2.0**-26)
    assert laws.tolerance(jnp.float32)[0] == pytest.approx(2.0**-11.5)
    assert laws.tolerance(jnp.int32) == (0.0, 0.0)
    assert laws.allclose(jnp.float32(1.0), jnp.float32(1.0001))
    assert not laws.allclose(jnp.float64(1.0), jnp.float64(1.0001))
    assert not laws.allclose(jnp.int32(3), jnp.int32(4))
    assert laws.allclose(
        jnp.array([jnp.nan, jnp.inf, -jnp.inf]), jnp.array([jnp.nan, jnp.inf, -jnp.inf])
    )
    assert not laws.allclose(jnp.array([jnp.nan]), jnp.array([0.0]))
    assert not laws.allclose(jnp.array([jnp.inf]), jnp.array([-jnp.inf]))
    assert not laws.allclose((jnp.zeros(2),), [jnp.zeros(2)])
    assert not laws.allclose(jnp.zeros(2), jnp.zeros(3))


# ------------------------------------------------- the protocol: act_input, canonical


class ShiftedActInput(scanalg.AbstractMonoid):
    """Addition whose `act_input` disagrees with `act(s, lift(x))` by one."""

    action_direction: ClassVar[str] = "both"

    def combine(self, earlier, later):
        return earlier + later

    def identity(self, like):
        return jnp.zeros_like(like)

    def act(self, state, element):
        return state + element

    def act_input(self, state, x):
        return state + x + 1.0


def test_catches_act_input_that_disagrees_with_act():
    assert laws.action_input_agrees in scanalg.check_laws(
        M.Sum(), S.sum_elements(), states=S.sum_elements(), max_examples=5
    )
    err = _violation(ShiftedActInput(), S.sum_elements(), states=S.sum_elements())
    assert err.law is laws.action_input_agrees
    assert "act_input(s, x) == act(s, lift(x))" in str(err) and "    x = array(" in str(err)
    assert err.error == pytest.approx(1.0)


def _seeded(build):
    return st.integers(0, 2**32 - 1).map(lambda seed: build(np.random.default_rng(seed)))


def _hmm_element(rng):
    """A float32 `HMMForward` element in normal form (rows on the simplex, max scale 0)."""
    matrix = rng.dirichlet(np.ones(3), size=3)
    log_scale = 20 * rng.normal(size=3)
    return ScaledMatrix(matrix.astype(np.float32), (log_scale - log_scale.max()).astype(np.float32))


def test_projective_monoid_needs_no_custom_equality():
    """`HMMForward` in float32 with normal-form elements: the fold's first element is the
    lifted step, the scan's its normal form. The default equality compares normal forms
    (`canonical`); comparing raw elements reported a false violation (error 19.2)."""
    a = np.random.default_rng(0).dirichlet(np.ones(3), size=3).astype(np.float32)
    args = (HMMForward(jnp.asarray(a)), _seeded(_hmm_element))
    kwargs = dict(
        states=_seeded(lambda rng: rng.dirichlet(np.ones(3)).astype(np.float32)),
        inputs=_seeded(lambda rng: (30 * rng.normal(size=3)).astype(np.float32)),
        methods=(scanalg.Sequential(), scanalg.Parallel()),
        max_examples=5,
    )
    chosen = ["associativity", "scan_agrees_with_fold"]  # the laws on elements
    assert scanalg.check_laws(*args, laws=chosen, **kwargs) == (
        laws.associativity,
        laws.scan_agrees_with_fold,
    )
    with pytest.raises(scanalg.LawViolation, match="scan_agrees_with_fold"):
        scanalg.check_laws(*args, laws=["scan_agrees_with_fold"], equal=laws.allclose, **kwargs)


def test_identity_returning_a_number_is_reported():
    class NumberIdentity(scanalg.AbstractMonoid):
        def combine(self, earlier, later):
            return earlier + later

        def identity(self, like):
            return 0.0

    with pytest.raises(TypeError, match=r"NumberIdentity.identity\(like\).*Python number"):
        scanalg.check_laws(NumberIdentity(), S.sum_elements())


def test_monoid_input_checks_run_first():
    with pytest.raises(TypeError, match="LogAddExp needs floating-point"):
        scanalg.check_laws(M.LogAddExp(), S.sum_elements((), np.int32), laws=["associativity"])


def test_default_methods_come_from_the_registry():
    from scanalg._methods import METHODS

    registered = tuple(scanalg._methods.as_method(name) for name in METHODS)
    assert laws.registered_methods() == registered
    assert laws.default_methods == registered
    assert {type(m) for m in registered} >= {
        scanalg.Sequential,
        scanalg.Parallel,
        scanalg.Blocked,
        scanalg.Auto,
    }


# -------------------------------------------------------------------- strategies

fast = hypothesis.settings(max_examples=25)


@fast
@hypothesis.given(S.matmul_elements(3, np.float32, min_singular_value=0.25))
def test_matmul_elements_are_bounded_and_conditioned(a):
    assert a.dtype == np.float32 and a.shape == (3, 3)
    singular = np.linalg.svd(a.astype(np.float64), compute_uv=False)
    assert singular.max() <= 1 + 1e-5 and singular.min() >= 0.25 - 1e-5


@fast
@hypothesis.given(S.affine_elements(2), S.affine_states(2), S.matmul_states(2, batch_shape=3))
def test_affine_and_state_strategies(element, state, rows):
    a, b = element
    assert a.shape == (2, 2) and b.shape == state.shape == (2,) and rows.shape == (3, 2)
    assert np.all(np.abs(b) <= 1) and np.linalg.norm(a, 2) <= 1 + 1e-12


@fast
@hypothesis.given(S.finite_functions(4, np.int16), S.finite_function_states(4, (2,)))
def test_finite_function_strategies(f, s):
    assert f.dtype == np.int16 and f.shape == (4,) and np.all((0 <= f) & (f < 4))
    assert s.shape == (2,) and np.all((0 <= s) & (s < 4))


@fast
@hypothesis.given(
    S.logaddexp_elements((3,), np.float32),
    S.max_elements((2,), np.int8),
    S.product_elements(2),
    S.sequences(S.affine_elements(2), max_length=3),
)
def test_elementwise_strategies_and_sequences(logw, m, p, seq):
    assert logw.dtype == np.float32 and np.all((logw <= 30) & ~np.isnan(logw))
    assert m.dtype == np.int8 and m.shape == (2,)
    assert p.shape == (2,) and np.all(np.abs(p) <= 2)
    a, b = seq
    assert a.shape[0] == b.shape[0] <= 3 and a.shape[1:] == (2, 2) and b.shape[1:] == (2,)


def test_products_build_valid_elements():
    # Operational generation: products of stochastic matrices are stochastic.
    base = S.arrays((3, 3), min_value=0.0, max_value=1.0).map(
        lambda w: (w + 0.1) / (w + 0.1).sum(axis=1, keepdims=True)
    )
    stochastic = S.products(np.matmul, base, max_factors=3)

    @hypothesis.settings(max_examples=10)
    @hypothesis.given(stochastic)
    def check(p):
        assert isinstance(p, np.ndarray) and p.shape == (3, 3)
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
        assert np.all(p >= 0)

    check()
    with pytest.raises(ValueError):
        S.products(np.matmul, base, min_factors=0)
