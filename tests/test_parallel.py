"""`Parallel`'s default (hybrid odd/even) scan, directly and over serial leaves,
against a plain NumPy fold, at every length 1..70 and around powers of two; its
program size; jit/vmap/grad agreement."""

import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import tree_allclose

import scanalg
from scanalg import monoids as M
from scanalg.models.hmm import HMMForward

K = 4  # states of the integer maps
PARALLEL = scanalg.Parallel()
# Unrolls up to 6 levels at every length (the default leaves 16 elements or more to the
# doubling loop, so only sequences of 1024 or more get all 6 levels), on the inputs
# themselves (no leaves).
DEEP = scanalg.Parallel(min_loop_length=1, leaf_size=1)
# Leaves of 3 inputs from length 9 on (most lengths end in a partial leaf), the hybrid
# scan across.
LEAVES = scanalg.Parallel(min_loop_length=1, leaf_size=3)


@functools.cache
def _compiler_options():
    """These programs are tiny and compiled once per length: skip XLA's backend
    optimisations (compile time, not run time, is what the sweep costs)."""
    options = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
    try:
        jax.jit(lambda x: x + 1, compiler_options=options)(jnp.zeros(()))
    except Exception:  # pragma: no cover - depends on the XLA version
        return None
    return options


def _jit(fn, **kwargs):
    return jax.jit(fn, compiler_options=_compiler_options(), **kwargs)


class Coded(scanalg.AbstractMonoid):
    """Maps $[K] \\to [K]$ under composition (as `FiniteFunction`: the earlier map is
    applied last), given as codes into a table of maps: `lift` looks the map up and
    `act_input` evaluates it without building the element. Integer-valued and
    non-commutative, so every order or padding mistake shows, exactly."""

    maps: jax.Array
    action_direction: ClassVar[str] = "reverse"
    lifts: ClassVar[bool] = True

    def lift(self, code):
        return self.maps[code]

    def combine(self, earlier, later):
        return earlier[later]

    def identity(self, like):
        return jnp.arange(like.shape[-1], dtype=like.dtype)

    def act(self, state, element):
        return element[state]

    def act_input(self, state, code):
        return self.maps[code, state]


MAPS = np.random.default_rng(0).integers(0, K, size=(7, K)).astype(np.int32)
CODED = Coded(jnp.asarray(MAPS))


def np_fold(fs, *, reverse=False, init=None, dual=False):
    """A left fold in NumPy over the maps `fs` (`(n, K)`): prefix (suffix) compositions,
    or the states from `init`; `dual` composes in the opposite order (`M.Dual`)."""
    compose = (lambda a, b: b[a]) if dual else (lambda a, b: a[b])
    n = len(fs)
    order = range(n - 1, -1, -1) if reverse else range(n)
    out = np.zeros((n, K) if init is None else (n,), np.int32)
    carry = init
    for i, t in enumerate(order):
        if init is not None:
            carry = fs[t][carry]
        elif i == 0:
            carry = fs[t]
        else:
            carry = compose(fs[t], carry) if reverse else compose(carry, fs[t])
        out[t] = carry
    return out


# Reverse scans are forward scans of the time-reversed sequence (with `combine`'s
# arguments swapped back), so they share the forward code's length handling: the
# sweep runs them at the lengths where the parities of the first levels and the size
# of the top differ, the forward scans at every length.
REVERSE_LENGTHS = (*range(1, 10), 16, 17, 31, 32, 33, 34, *range(63, 68))


@functools.cache
def _sweep(reverse: bool):
    """One program per length: products and states forwards (and backwards), and the
    reduction, all by the hybrid scan's methods directly, as deep as the length allows,
    and over leaves of 3."""

    def run(codes, init):
        out = ()
        for method in (DEEP, LEAVES):
            out += (
                method.prefix(CODED, codes, False),
                method.prefix_act(M.Dual(CODED), codes, init, False),
                method.total(CODED, codes),
            )
            if reverse:
                out += (
                    method.prefix(CODED, codes, True),
                    method.prefix_act(CODED, codes, init, True),
                )
        return out

    return _jit(run)


@pytest.mark.parametrize("n", range(1, 71))
def test_every_length_against_fold(n):
    codes = np.random.default_rng(n).integers(0, len(MAPS), size=n).astype(np.int32)
    init = np.int32(n % K)
    fs = MAPS[codes]
    reverse = n in REVERSE_LENGTHS
    got = _sweep(reverse)(jnp.asarray(codes), jnp.asarray(init))
    want = [np_fold(fs), np_fold(fs, init=init, dual=True), np_fold(fs)[-1]]
    if reverse:
        want += [np_fold(fs, reverse=True), np_fold(fs, reverse=True, init=init)]
    assert len(got) == 2 * len(want)
    for g, w in zip(got, want + want):
        np.testing.assert_array_equal(g, w)


def _scans(fs, init):
    """Every kind of scan of `FiniteFunction` (no `lift`) through `scanalg.scan`."""
    ff, dual = M.FiniteFunction(), M.Dual(M.FiniteFunction())
    out = {}
    for reverse in (False, True):
        for exclusive in (False, True):
            kw = dict(reverse=reverse, exclusive=exclusive, method=PARALLEL)
            out["products", reverse, exclusive] = scanalg.scan(ff, fs, **kw)
            acting = ff if reverse else dual  # (a reverse action, and a forward one)
            out["states", reverse, exclusive] = scanalg.scan(acting, fs, init=init, **kw)
    out["total", False, False] = scanalg.reduce(ff, fs, method=PARALLEL)
    return out


def _shifted(inclusive, first, reverse):
    out = np.roll(inclusive, -1 if reverse else 1, axis=0)
    out[-1 if reverse else 0] = first
    return out


@pytest.mark.parametrize("n", [2, 33, 127, 128, 129, 1023, 1024, 1025])
def test_powers_of_two_and_exclusive_bit_identical(n):
    rng = np.random.default_rng(100 + n)
    fs = rng.integers(0, K, size=(n, K)).astype(np.int32)
    init = np.int32(1)
    got = _jit(_scans)(jnp.asarray(fs), jnp.asarray(init))
    identity = np.arange(K, dtype=np.int32)
    for reverse in (False, True):
        products = np_fold(fs, reverse=reverse)
        states = np_fold(fs, reverse=reverse, init=init, dual=not reverse)
        for exclusive in (False, True):
            want_p = _shifted(products, identity, reverse) if exclusive else products
            want_s = _shifted(states, init, reverse) if exclusive else states
            np.testing.assert_array_equal(got["products", reverse, exclusive], want_p)
            np.testing.assert_array_equal(got["states", reverse, exclusive], want_s)
    np.testing.assert_array_equal(got["total", False, False], np_fold(fs)[-1])


@pytest.mark.parametrize(
    "method",
    [
        scanalg.Parallel(levels=0),
        scanalg.Parallel(levels=1, min_loop_length=1),
        scanalg.Parallel(levels=3, min_loop_length=1),
        scanalg.Parallel(algorithm="doubling"),
    ],
    ids=repr,
)
@pytest.mark.parametrize("n", [5, 33])
def test_other_levels_and_doubling(method, n):
    codes = np.random.default_rng(n).integers(0, len(MAPS), size=n).astype(np.int32)
    fs = MAPS[codes]

    def run(codes, init):
        return (
            scanalg.scan(CODED, codes, method=method),
            scanalg.scan(CODED, codes, reverse=True, method=method),
            scanalg.scan(CODED, codes, init=init, reverse=True, method=method),
            scanalg.scan(M.Dual(CODED), codes, init=init, method=method),
        )

    got = _jit(run)(jnp.asarray(codes), jnp.int32(2))
    want = (
        np_fold(fs),
        np_fold(fs, reverse=True),
        np_fold(fs, reverse=True, init=np.int32(2)),
        np_fold(fs, init=np.int32(2), dual=True),
    )
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


class _Counting(scanalg.AbstractMonoid):
    """`Sum`, counting how often `combine` and `act` are traced."""

    action_direction: ClassVar[str] = "both"
    calls: ClassVar[dict] = {"combine": 0, "act": 0}

    def combine(self, earlier, later):
        self.calls["combine"] += 1
        return earlier + later

    def identity(self, like):
        return jnp.zeros_like(like)

    def act(self, state, element):
        self.calls["act"] += 1
        return state + element


@pytest.mark.parametrize("reverse", [False, True])
def test_program_size_does_not_grow_with_length(reverse):
    """`2L + 1` instances of `combine` whatever the length (and `L + 1` of each of
    `combine` and `act` with an initial state): the compile time is bounded. Leaves add
    one loop body per pass (a `combine` to reduce a leaf, then a `combine` or an `act`
    to scan it)."""
    monoid, levels = _Counting(), PARALLEL.levels

    def count(method, n):
        x = jax.ShapeDtypeStruct((n,), jnp.float32)
        s = jax.ShapeDtypeStruct((), jnp.float32)
        _Counting.calls.update(combine=0, act=0)
        jax.eval_shape(lambda x: method.prefix(monoid, x, reverse), x)
        prefix = dict(_Counting.calls)
        _Counting.calls.update(combine=0, act=0)
        jax.eval_shape(lambda x, s: method.prefix_act(monoid, x, s, reverse), x, s)
        return prefix, dict(_Counting.calls)

    def expected(unrolled, loops):
        """`2L + 1` products (`L + 1` of each with a state), plus one per leaf loop."""
        return (
            {"combine": 2 * unrolled + 1 + loops, "act": 0},
            {"combine": unrolled + 1 + loops // 2, "act": unrolled + 1 + loops // 2},
        )

    direct = scanalg.Parallel(leaf_size=1)
    # (at most 3 levels across leaves: 10^4 / 32 leaves are enough for all of them)
    cases = [(direct, 10**3, expected(levels, 0)), (PARALLEL, 10**4, expected(min(levels, 3), 2))]
    for method, short, want in cases:
        assert count(method, short) == count(method, 10**6) == want, method
    # Short sequences unroll fewer levels: 100 -> 50 -> 25 leaves 25 to the loop.
    _Counting.calls.update(combine=0, act=0)
    jax.eval_shape(lambda x: direct.prefix(monoid, x, reverse), jnp.zeros(100))
    assert _Counting.calls["combine"] == 2 * 2 + 1


def test_jit_vmap_grad_agree_with_sequential():
    rng = np.random.default_rng(7)
    n = 21
    a = jnp.asarray(0.9 * np.linalg.qr(rng.normal(size=(3, n, 3, 3)))[0])
    b = jnp.asarray(rng.normal(size=(3, n, 3)))
    h0 = jnp.asarray(rng.normal(size=(3,)))
    affine = M.Affine()

    def loss(method, a, b, h0):
        states = scanalg.scan(affine, (a, b), init=h0, method=method)
        prods = scanalg.scan(affine, (a, b), reverse=True, method=method)
        return jnp.sum(jnp.sin(states)) + jnp.sum(prods[0] * prods[1][..., None])

    def batched(method):
        value_and_grad = jax.value_and_grad(functools.partial(loss, method), argnums=(0, 1, 2))
        return _jit(jax.vmap(value_and_grad, in_axes=(0, 0, None)))(a, b, h0)

    want = batched(scanalg.Sequential())
    for method in (DEEP, LEAVES):  # (21 inputs: 7 leaves of 3)
        assert tree_allclose(batched(method), want, rtol=1e-9, atol=1e-9), method


def test_bad_arguments():
    with pytest.raises(ValueError, match="'hybrid', 'doubling' or 'associative_scan'"):
        scanalg.Parallel(algorithm="blelloch")
    with pytest.raises(ValueError, match="levels"):
        scanalg.Parallel(levels=-1)
    with pytest.raises(ValueError, match="min_loop_length"):
        scanalg.Parallel(min_loop_length=0)
    with pytest.raises(ValueError, match=r"Parallel\(leaf_size=...\) must be >= 1"):
        scanalg.Parallel(leaf_size=0)
    with pytest.raises(TypeError, match=r"Parallel\(leaf_size=...\)"):
        scanalg.Parallel(leaf_size=True)


@pytest.mark.parametrize(
    ("monoid", "input_shape", "leaf"),
    [
        (M.Sum(), (3,), 32),  # elements are the inputs
        (HMMForward(jnp.eye(2)), (2,), 32),  # K x K + K numbers from K: ratio K + 1
        (HMMForward(jnp.eye(15)), (15,), 32),
        (HMMForward(jnp.eye(16)), (16,), 64),
        (HMMForward(jnp.eye(31)), (31,), 64),
        (HMMForward(jnp.eye(32)), (32,), 128),
    ],
)
def test_default_leaf_size_grows_with_the_element(monoid, input_shape, leaf):
    """The smallest power of two >= 32 and >= 2 x (element size / input size): the leaf
    products never take more than half the inputs' memory. Leaves start at that many
    leaves (and are the three passes of `Blocked` with that block size)."""
    method = scanalg.Parallel()
    assert method._leaf_size(monoid, jnp.zeros((10, *input_shape))) == leaf
    assert method._leaves(monoid, jnp.zeros((leaf * leaf - 1, *input_shape))) is None
    blocked = method._leaves(monoid, jnp.zeros((leaf * leaf, *input_shape)))
    assert blocked.block_size == leaf and blocked.outer.leaf_size == 1
