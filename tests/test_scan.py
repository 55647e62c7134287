"""The executor against a plain Python left fold, for every method and basic monoid."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jaxtyping
import numpy as np
import pytest
from helpers import (
    EXACT,
    NON_COMMUTATIVE,
    all_methods,
    all_monoids,
    make_elems,
    make_init,
    method_ids,
    reference,
    tree_allclose,
    variants,
)

import scanalg
from scanalg import monoids as M
from scanalg.testing import LENGTHS as BATTERY_LENGTHS

# 0, 1, 2, 3, 2^k - 1, 2^k, 2^k + 1 and a long one (lengths that are and are not a
# multiple of the block size and of the number of devices); the commutative monoids,
# where order errors cannot show, get fewer. `MatMul` and `FiniteFunction` are in the
# conformance battery (tests/test_conformance.py runs it for every method), at its
# lengths: here they get the others.
LENGTHS = (0, 1, 2, 3, 7, 8, 9, 16, 17, 1000)
SHORT_LENGTHS = (0, 1, 2, 7, 17)
_IN_BATTERY = ("MatMul", "FiniteFunction")


def _lengths(name: str) -> tuple[int, ...]:
    if name not in NON_COMMUTATIVE:
        return SHORT_LENGTHS
    if name in _IN_BATTERY:
        return tuple(n for n in LENGTHS if n not in BATTERY_LENGTHS)
    return LENGTHS


def _at(elems, t):
    return jax.tree.map(lambda x: x[t], elems)


@pytest.mark.parametrize("method", all_methods, ids=method_ids)
@pytest.mark.parametrize("name", list(all_monoids))
def test_scan_and_reduce_match_fold(method, name):
    """Every variant (forward/reverse, inclusive/exclusive, with and without `init`)
    and the reduction equal the left fold: exactly, dtype included, for the
    integer-valued monoids (so every method gives bit-identical answers)."""
    monoid, init = all_monoids[name], make_init(name)
    cases = variants(name)

    def run_one(elems):
        scans = [
            scanalg.scan(
                monoid,
                elems,
                init=init if with_init else None,
                reverse=reverse,
                exclusive=exclusive,
                method=method,
            )
            for reverse, exclusive, with_init in cases
        ]
        return scans, scanalg.reduce(monoid, elems, method=method)

    # One compilation for every length, variant and the reduction.
    lengths = _lengths(name)
    results = jax.jit(lambda all_elems: [run_one(e) for e in all_elems])(
        [make_elems(name, n) for n in lengths]
    )
    exact = name in EXACT
    tol = dict(rtol=0, atol=0) if exact else dict(rtol=1e-9, atol=1e-9)
    for n, (scans, total) in zip(lengths, results):
        for case, got in zip(cases, scans):
            want = reference(name, n, *case)
            assert tree_allclose(got, want, **tol), (n, case)
            if exact:
                assert [x.dtype for x in jax.tree.leaves(got)] == [jnp.int32]
        if n == 0:
            like = jax.tree.map(lambda x: jnp.zeros(x.shape[1:], x.dtype), make_elems(name, 0))
            want = monoid.identity(like)
        else:
            want = _at(reference(name, n, False, False, False), n - 1)
        assert tree_allclose(total, want, **tol), n


@pytest.mark.parametrize("method", all_methods, ids=method_ids)
def test_jit_and_vmap(method):
    batch = jnp.stack([make_elems("MatMul", 13, seed=s) for s in range(4)])
    init = make_init("MatMul")

    @jax.jit
    def run(elems):
        return scanalg.scan(M.MatMul(), elems, init=init, method=method)

    batched = jax.vmap(run)(batch)
    for i in range(4):
        assert tree_allclose(
            batched[i],
            reference("MatMul", 13, False, False, True) if i == 0 else run(batch[i]),
            rtol=1e-9,
            atol=1e-9,
        )
    affine = jax.jit(jax.vmap(lambda e: scanalg.scan(M.Affine(), e, method=method, reverse=True)))(
        (
            jnp.stack([make_elems("Affine", 9, s)[0] for s in range(3)]),
            jnp.stack([make_elems("Affine", 9, s)[1] for s in range(3)]),
        )
    )
    assert tree_allclose(_at(affine, 0), reference("Affine", 9, True, False, False), rtol=1e-9)


def test_grad_equal_across_methods():
    a, b = make_elems("Affine", 33, seed=5)
    init = make_init("Affine")

    def loss(a, b, h0, method):
        states = scanalg.scan(M.Affine(), (a, b), init=h0, method=method)
        products = scanalg.scan(M.MatMul(), a, reverse=True, method=method)
        return jnp.sum(jnp.sin(states)) + jnp.sum(products[0] ** 2)

    grad = eqx.filter_jit(jax.grad(loss, argnums=(0, 1, 2)))
    grads = [grad(a, b, init, m) for m in all_methods]
    for g in grads[1:]:
        assert tree_allclose(g, grads[0], rtol=1e-8, atol=1e-10)
    # ... and against a finite difference of the sequential loop.
    eps = 1e-6
    direction = jnp.asarray(np.random.default_rng(0).normal(size=b.shape))
    loss_jit = eqx.filter_jit(loss)
    fd = (
        loss_jit(a, b + eps * direction, init, "sequential")
        - loss_jit(a, b - eps * direction, init, "sequential")
    ) / (2 * eps)
    assert np.allclose(fd, jnp.sum(grads[0][1] * direction), rtol=1e-6)


def test_float32_supported():
    a = make_elems("MatMul", 100).astype(jnp.float32)
    scan = eqx.filter_jit(scanalg.scan)
    outs = [scan(M.MatMul(), a, method=m) for m in all_methods]
    for out in outs:
        assert out.dtype == jnp.float32
        assert tree_allclose(out, outs[0], rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------- bad input


def test_leaves_with_different_lengths():
    with pytest.raises(ValueError, match=r"\[5, 4\]"):
        scanalg.scan(M.Affine(), (jnp.zeros((5, 2, 2)), jnp.zeros((4, 2))))


def test_scalar_leaf():
    with pytest.raises(ValueError, match="leading time axis"):
        scanalg.scan(M.Sum(), jnp.array(1.0))


def test_unknown_method():
    with pytest.raises(ValueError, match="'sequential', 'parallel', 'blocked', 'auto'") as e:
        scanalg.scan(M.Sum(), jnp.zeros(3), method="fast")
    assert "scanalg.register_method(name, factory)" in str(e.value)


def test_register_method():
    assert set(scanalg.METHODS) >= {"sequential", "parallel", "blocked", "auto"}
    with pytest.raises(TypeError):
        scanalg.METHODS["mine"] = scanalg.Sequential  # a read-only view
    with pytest.raises(ValueError, match="already registered"):
        scanalg.register_method("Blocked", scanalg.Blocked)
    with pytest.raises(TypeError, match="factory"):
        scanalg.register_method("mine", scanalg.Sequential())
    scanalg.register_method("Test-Blocked-3", lambda: scanalg.Blocked(block_size=3))
    try:
        assert scanalg.METHODS["test-blocked-3"]() == scanalg.Blocked(block_size=3)
        xs = make_elems("Affine", 7)
        got = scanalg.scan(M.Affine(), xs, method="test-blocked-3")
        assert tree_allclose(got, reference("Affine", 7, False, False, False))
        scanalg.register_method("test-blocked-3", lambda: "blocked", replace=True)
        with pytest.raises(TypeError, match="returned 'blocked', not an AbstractScanMethod"):
            scanalg.scan(M.Affine(), xs, method="test-blocked-3")
    finally:
        from scanalg._methods._registry import _FACTORIES

        _FACTORIES.pop("test-blocked-3")


@pytest.mark.parametrize(
    "build, error, pattern",
    [
        (lambda: scanalg.Blocked(block_size=0), ValueError, r"block_size=...\) must be >= 1"),
        (lambda: scanalg.Blocked(block_size=True), TypeError, r"Blocked\(block_size=...\)"),
        # (under the suite's runtime type checker, its own TypeError may come first)
        (lambda: scanalg.Blocked(block_size=2.0), TypeError, r"(?s)Blocked.*block_size"),
        (lambda: scanalg.Blocked(unroll=0), ValueError, r"Blocked\(unroll=...\)"),
        (lambda: scanalg.Blocked(outer="parallel"), TypeError, r"(?s)Blocked.*outer"),
        (lambda: scanalg.Sequential(unroll=0), ValueError, r"Sequential\(unroll=...\)"),
        (lambda: scanalg.Sequential(unroll=True), TypeError, r"Sequential\(unroll=...\)"),
        (lambda: scanalg.Auto(min_blocked_length=-1), ValueError, "min_blocked_length"),
        (lambda: scanalg.Auto(min_parallel_length="x"), TypeError, "min_parallel_length"),
        (lambda: scanalg.Auto(min_blocked_ops=False), TypeError, "min_blocked_ops"),
        (lambda: scanalg.Auto(max_blocked_act_size=1.5), TypeError, "max_blocked_act_size"),
        (lambda: scanalg.Auto(min_blocked_act_kernels=-1), ValueError, "min_blocked_act_kernels"),
        (lambda: scanalg.Parallel(algorithm="blelloch"), ValueError, "doubling"),
    ],
)
def test_bad_method_parameters(build, error, pattern):
    with pytest.raises(error, match=pattern):
        build()


def test_runtime_type_checks_are_on(request):
    """The suite runs `scanalg` under jaxtyping's import hook with beartype
    (pyproject.toml's addopts), in every xdist worker too: a call that breaks an
    annotation is a `TypeCheckError` before the function runs."""
    if not request.config.getoption("jaxtyping_packages"):
        pytest.skip("run without --jaxtyping-packages")
    with pytest.raises(jaxtyping.TypeCheckError, match="unroll"):
        scanalg.Sequential(unroll="2")


def test_not_a_monoid():
    with pytest.raises(TypeError, match="AbstractMonoid"):
        scanalg.scan(jnp.add, jnp.zeros(3))


def test_init_without_act():
    class NoAct(scanalg.AbstractMonoid):
        def combine(self, earlier, later):
            return earlier + later

        def identity(self, like):
            return jnp.zeros_like(like)

    with pytest.raises(TypeError, match="NoAct defines no `act`"):
        scanalg.scan(NoAct(), jnp.zeros(3), init=jnp.array(0.0))


def test_init_in_wrong_direction():
    with pytest.raises(TypeError, match="FiniteFunction.act is a reverse action"):
        scanalg.scan(M.FiniteFunction(), jnp.zeros((3, 4), jnp.int32), init=jnp.array(0))
    with pytest.raises(TypeError, match="Affine.act is a forward action"):
        scanalg.scan(M.Affine(), make_elems("Affine", 3), init=jnp.zeros(3), reverse=True)


class _Broken(scanalg.AbstractMonoid):
    what: str = eqx.field(static=True)
    action_direction = "forward"

    def combine(self, earlier, later):
        if self.what == "combine-shape":
            return jnp.concatenate([earlier, later])
        if self.what == "combine-structure":
            return (earlier + later,)
        return earlier + later

    def identity(self, like):
        if self.what == "identity-dtype":
            return jnp.zeros(like.shape, jnp.int32)
        return jnp.zeros_like(like)

    def act(self, state, element):
        if self.what == "act-shape":
            return (state + element)[None]
        return state + element


@pytest.mark.parametrize(
    "what, pattern",
    [
        ("combine-shape", r"combine\(a, b\) changed .*float64\[4\] instead of float64\[2\]"),
        ("combine-structure", r"_Broken.combine\(a, b\) changed the element: it returned struct"),
        ("identity-dtype", r"identity\(like\) changed .*int32\[2\] instead of float64\[2\]"),
        ("act-shape", r"_Broken.act\(state, element\) changed the element: .*float64\[1, 2\]"),
    ],
)
def test_signature_changes_are_type_errors(what, pattern):
    with pytest.raises(TypeError, match=pattern):
        scanalg.scan(_Broken(what), jnp.ones((4, 2)), init=jnp.zeros(2))


class _FixedMatrixAffine(scanalg.AbstractMonoid):
    """Affine maps with a fixed matrix: the inputs are only the offsets."""

    a: jax.Array
    action_direction = "forward"
    lifts = True

    def lift(self, b):
        return self.a, b

    def combine(self, earlier, later):
        return M.Affine().combine(earlier, later)

    def identity(self, like):
        return M.Affine().identity(like)

    def act(self, state, element):
        return M.Affine().act(state, element)


def _lift_outputs(method):
    """Scans and a reduction of `_FixedMatrixAffine` inputs, and the gradient with
    respect to its matrix; for `method=None`, the same from the lifted elements with
    `M.Affine()` and `Sequential`."""
    a = make_elems("Affine", 1, seed=2)[0][0]
    offsets = make_elems("Affine", 23, seed=4)[1]
    init = make_init("Affine")

    def run(monoid, xs, method):
        return (
            scanalg.scan(monoid, xs, init=init, method=method),
            scanalg.scan(monoid, xs, reverse=True, exclusive=True, method=method),
            scanalg.reduce(monoid, xs, method=method),
        )

    def loss(a, method):
        return jnp.sum(scanalg.scan(_FixedMatrixAffine(a), offsets, init=init, method=method))

    if method is None:
        lifted = (jnp.broadcast_to(a, (23, 3, 3)), offsets)
        out = jax.jit(run, static_argnums=(0, 2))(M.Affine(), lifted, "sequential")
        return out, jax.grad(loss)(a, "sequential")
    out = eqx.filter_jit(run)(_FixedMatrixAffine(a), offsets, method)
    return out, jax.jit(jax.grad(loss), static_argnums=1)(a, method)


@pytest.mark.parametrize("method", all_methods, ids=method_ids)
def test_lift_inputs(method):
    got, grad = _lift_outputs(method)
    want, ref = _lift_reference()
    assert tree_allclose(got, want, rtol=1e-9, atol=1e-9)
    # gradients flow into the monoid's parameters through `lift`
    assert tree_allclose(grad, ref, rtol=1e-8, atol=1e-10)


_lift_reference = functools.cache(lambda: _lift_outputs(None))


def test_auto_rule_on_cpu():
    auto = scanalg.Auto()
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.dirichlet(np.ones(4), size=4))
    ll = jnp.zeros((2048, 4))
    heavy = scanalg.hmm.HMMForward(a)
    assert isinstance(auto.resolve(heavy, ll, None), scanalg.Blocked)
    assert isinstance(auto.resolve(heavy, ll, jnp.ones(4) / 4), scanalg.Sequential)
    assert isinstance(auto.resolve(heavy, ll[:100], None), scanalg.Sequential)
    assert isinstance(auto.resolve(M.MatMul(), jnp.zeros((2048, 3, 3)), None), scanalg.Sequential)
    strict = scanalg.Auto(min_blocked_ops=10_000)
    assert isinstance(strict.resolve(heavy, ll, None), scanalg.Sequential)


def _kalman(n, length=2048):
    kalman = scanalg.lgssm.KalmanFilter()
    elems = scanalg.lgssm.FilterElement(
        A=jnp.zeros((length, n, n)),
        b=jnp.zeros((length, n)),
        C=jnp.zeros((length, n, n)),
        eta=jnp.zeros((length, n)),
        J=jnp.zeros((length, n, n)),
        loglik=jnp.zeros(length),
    )
    init = scanalg.lgssm.FilterState(mean=jnp.zeros(n), cov=jnp.zeros((n, n)), loglik=jnp.zeros(()))
    return kalman, elems, init


@pytest.mark.parametrize(
    "n, expected",
    [(2, scanalg.Blocked), (3, scanalg.Blocked), (4, scanalg.Sequential), (8, scanalg.Sequential)],
)
def test_auto_rule_with_init_on_cpu(n, expected):
    """With an initial state: blocked for long scans of many-operation acts on small
    elements (a Kalman step, state dimension 2 or 3: 17 or 34 scalars), sequential for
    larger elements (state dimension 4: 57 scalars, 4x slower blocked)."""
    kalman, elems, init = _kalman(n)
    assert isinstance(scanalg.Auto().resolve(kalman, elems, init), expected)
    short = jax.tree.map(lambda x: x[:100], elems)
    assert isinstance(scanalg.Auto().resolve(kalman, short, init), scanalg.Sequential)
    lenient = scanalg.Auto(min_blocked_act_ops=10_000)
    assert isinstance(lenient.resolve(kalman, elems, init), scanalg.Sequential)
    fused = scanalg.Auto(min_blocked_act_kernels=10_000)
    assert isinstance(fused.resolve(kalman, elems, init), scanalg.Sequential)


@pytest.mark.parametrize(
    "semiring", [scanalg.semirings.Entropy(), scanalg.semirings.KMax(4)], ids=repr
)
def test_auto_rule_with_init_counts_kernels(semiring):
    """An act of many operations that all fuse into a few loop kernels runs
    sequentially: semiring chain messages at K = 2 (`Entropy`: 110 operations,
    `KMax(4)`: 144, none of them a gather, dot product or sort)."""
    from scanalg._methods._auto import count_ops

    K, T = 2, 2048
    monoid = scanalg.semirings.ChainMessages(semiring, None)
    xs = (jnp.zeros(T, bool), jnp.zeros((T, K)), jnp.zeros((T, K, K)))
    init = semiring.normalise(semiring.from_scores(jnp.zeros(K)))[0]
    x = jax.tree.map(lambda v: v[0], xs)
    auto = scanalg.Auto()
    assert count_ops(monoid.act_input, init, x) >= auto.min_blocked_act_ops
    assert count_ops(monoid.act_input, init, x, fusible=False) < auto.min_blocked_act_kernels
    assert isinstance(auto.resolve(monoid, xs, init), scanalg.Sequential)
    eager = scanalg.Auto(min_blocked_act_kernels=0)
    assert isinstance(eager.resolve(monoid, xs, init), scanalg.Blocked)


class _Jitted(scanalg.AbstractMonoid):
    """`monoid` with `combine`, `act` and `act_input` each wrapped in `jax.jit`."""

    monoid: scanalg.AbstractMonoid

    @property
    def action_direction(self):
        return self.monoid.action_direction

    @property
    def lifts(self):
        return self.monoid.lifts

    def lift(self, x):
        return self.monoid.lift(x)

    def combine(self, earlier, later):
        return jax.jit(type(self.monoid).combine)(self.monoid, earlier, later)

    def identity(self, like):
        return self.monoid.identity(like)

    def act(self, state, element):
        return jax.jit(type(self.monoid).act)(self.monoid, state, element)

    def act_input(self, state, x):
        return jax.jit(type(self.monoid).act_input)(self.monoid, state, x)


def test_auto_counts_into_called_functions():
    """A `combine` (or `act_input`) wrapped in `jax.jit` gives the same choice."""
    rng = np.random.default_rng(0)
    heavy = scanalg.hmm.HMMForward(jnp.asarray(rng.dirichlet(np.ones(4), size=4)))
    ll = jnp.zeros((2048, 4))
    kalman, elems, init = _kalman(2)
    cases = [
        (heavy, ll, None, scanalg.Blocked),
        (M.MatMul(), jnp.zeros((2048, 3, 3)), None, scanalg.Sequential),
        (kalman, elems, init, scanalg.Blocked),
    ]
    for monoid, xs, s, expected in cases:
        for auto in (scanalg.Auto(), scanalg.Auto(min_blocked_ops=1, min_blocked_act_ops=1)):
            plain = auto.resolve(monoid, xs, s)
            assert type(plain) is type(auto.resolve(_Jitted(monoid), xs, s))
        assert isinstance(scanalg.Auto().resolve(_Jitted(monoid), xs, s), expected)


def test_operation_count():
    from scanalg._methods._auto import count_ops

    x = jnp.ones(3)

    def f(x):
        return jnp.sin(x) * 2 + 1  # three operations

    g = jax.custom_jvp(f)
    g.defjvp(lambda primals, tangents: (f(*primals), tangents[0]))

    def branches(x):
        # slice, squeeze, gt, convert the predicate, then the larger branch (f: 3)
        return jax.lax.cond(x[0] > 0, f, jnp.cos, x)

    assert count_ops(f, x) == count_ops(jax.jit(f), x) == 3
    assert count_ops(jax.checkpoint(f), x) == count_ops(g, x) == 3
    assert count_ops(lambda x: jax.lax.scan(lambda c, _: (f(c), None), x, None, 4)[0], x) == 3
    assert count_ops(branches, x) == count_ops(jax.jit(branches), x) == 7
    # Those that do not fuse into a loop kernel on CPU: none of f's; a gather, a dot
    # product and an argmax (also inside a called function).
    assert count_ops(f, x, fusible=False) == count_ops(branches, x, fusible=False) == 0

    def kernels(x):
        i = jnp.argmax(x)
        return f(x[i] * jax.jit(jnp.dot)(x, x))

    assert count_ops(kernels, x, fusible=False) == 3


@pytest.mark.parametrize("method", all_methods, ids=method_ids)
def test_prefix_from(method):
    """`prefix_from` starts every product from the given element."""
    monoid, xs = M.Affine(), make_elems("Affine", 13, seed=1)
    start = _at(make_elems("Affine", 1, seed=2), 0)
    with_start = jax.tree.map(lambda s, x: jnp.concatenate([s[None], x]), start, xs)
    got = jax.jit(lambda xs, s: [method.prefix_from(monoid, xs, s, r) for r in (False, True)])(
        xs, start
    )
    forward = reference("Affine", 13, False, False, False, seed=1)
    want_forward = scanalg.scan(monoid, with_start, method="sequential")
    assert tree_allclose(got[0], jax.tree.map(lambda x: x[1:], want_forward))
    reverse = jax.tree.map(lambda s, x: jnp.concatenate([x, s[None]]), start, xs)
    want_reverse = scanalg.scan(monoid, reverse, reverse=True, method="sequential")
    assert tree_allclose(got[1], jax.tree.map(lambda x: x[:-1], want_reverse))
    assert not tree_allclose(got[0], forward)  # the start made a difference


# ---------------------------------------------------------------------------
# readout= and act_input
# ---------------------------------------------------------------------------


READOUT_CASES = [("Affine", False), ("FiniteFunction", True)]


def _readout(state, x):
    # Something that uses both arguments and changes the output's structure.
    leaf = jax.tree.leaves(x)[-1]
    return {"state": state, "mix": jnp.sum(state) * 2 + jnp.sum(leaf)}


@pytest.mark.parametrize("method", all_methods, ids=method_ids)
def test_readout_is_a_function_of_each_state_and_input(method):
    """`readout(state, x)` sees the state the scan would return at t and the input at t."""
    cases = [(name, reverse, e) for name, reverse in READOUT_CASES for e in (False, True)]

    @jax.jit
    def run(elems):
        out = []
        for name, reverse, exclusive in cases:
            monoid, init, xs = all_monoids[name], make_init(name), elems[name]
            kw = dict(init=init, reverse=reverse, exclusive=exclusive, method=method)
            states = scanalg.scan(monoid, xs, **kw)
            out.append((scanalg.scan(monoid, xs, readout=_readout, **kw), states))
        return out

    elems = {name: make_elems(name, 17, seed=3) for name, _ in READOUT_CASES}
    for case, (got, states) in zip(cases, run(elems)):
        expected = jax.vmap(_readout)(states, elems[case[0]])
        assert tree_allclose(got, expected), case


def test_readout_needs_init_and_handles_empty_sequences():
    with pytest.raises(TypeError, match="`readout` needs `init`"):
        scanalg.scan(M.Sum(), jnp.zeros((3, 2)), readout=lambda s, x: s)
    out = scanalg.scan(
        M.Sum(),
        jnp.zeros((0, 2)),
        init=jnp.zeros(2),
        readout=lambda s, x: (s[0], jnp.concatenate([s, x])),
    )
    assert out[0].shape == (0,) and out[1].shape == (0, 4)


def test_readout_is_fused_into_the_sequential_loop():
    """With `Sequential`, the states are not stacked: the loop emits only the readout."""
    a, b = make_elems("Affine", 50)
    init = make_init("Affine")

    def run(a, b):
        return scanalg.scan(
            M.Affine(), (a, b), init=init, readout=lambda s, x: jnp.sum(s), method="sequential"
        )

    jaxpr = jax.make_jaxpr(run)(a, b)
    scans = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"]
    assert len(scans) == 1
    assert [v.aval.shape for v in scans[0].outvars] == [(3,), (50,)]


def test_hmm_backward_act_input_matches_act_of_lift():
    rng = np.random.default_rng(0)
    k = 4
    a = rng.dirichlet(np.ones(k), size=k)
    a[0, 2] = 0.0
    a /= a.sum(1, keepdims=True)
    f = rng.dirichlet(np.ones(k), size=6)
    f[1, 3] = 0.0  # a zero filtered probability: a zero column in the kernel
    s = rng.dirichlet(np.ones(k), size=6)
    for monoid, x in [
        (scanalg.hmm.HMMBackward(jnp.asarray(a)), f),
        (scanalg.hmm.HMMBackward(), (f, np.stack([a] * 6))),
    ]:
        got = jax.vmap(monoid.act_input)(jnp.asarray(s), jax.tree.map(jnp.asarray, x))
        lifted = jax.vmap(monoid.lift)(jax.tree.map(jnp.asarray, x))
        expected = jax.vmap(monoid.act)(jnp.asarray(s), lifted)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def test_hmm_forward_act_input_on_evidence_matches_act_of_lift():
    """The fast form for `Evidence` inputs equals the exact action on the element."""
    rng = np.random.default_rng(1)
    k = 4
    a = jnp.asarray(rng.dirichlet(np.ones(k), size=k))
    ll = jnp.asarray(rng.normal(scale=5.0, size=(6, k)))
    s = jnp.asarray(rng.dirichlet(np.ones(k), size=6))
    monoid = scanalg.hmm.HMMForward(a)
    evidence = M.Evidence.of(ll)
    got = jax.vmap(monoid.act_input)(s, evidence)
    expected = jax.vmap(monoid.act)(s, jax.vmap(monoid.lift)(ll))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    assert tree_allclose(jax.vmap(monoid.lift)(evidence), jax.vmap(monoid.lift)(ll))
