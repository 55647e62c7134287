"""Semirings: their laws (through the law checker), the matrix monoid over a semiring,
the chain monoid, and the fast forms against the generic ones."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scanalg
from scanalg import semirings as sr, strategies as ss

SEMIRINGS = (sr.Log(), sr.Std(), sr.Max(), sr.KMax(3), sr.Entropy())
IDS = [repr(s) for s in SEMIRINGS]
# The matrix monoid's scan law on three methods (every method is checked on chains in
# test_crf.py); few examples: each law compiles once, and the laws are simple.
METHODS = (scanalg.Sequential(), scanalg.Blocked(block_size=2, outer=scanalg.Parallel()))


@pytest.mark.parametrize("semiring", SEMIRINGS, ids=IDS)
def test_semiring_laws(semiring):
    checked = ss.check_semiring_laws(semiring, max_examples=20)
    assert len(checked) == 10 and "times.left_distributivity" in checked


@pytest.mark.parametrize("semiring", SEMIRINGS, ids=IDS)
def test_matrix_monoid_laws(semiring):
    monoid = sr.SemiringMatMul(semiring)
    laws = scanalg.check_laws(
        monoid,
        ss.semiring_matrices(semiring, 2),
        states=ss.semiring_vectors(semiring, 2),
        methods=METHODS,
        max_examples=8,
        max_length=4,
    )
    assert {law.name for law in laws} >= {"associativity", "action_compatibility"}


class _Broken(sr.AbstractSemiring):
    """Log-weights multiplied as if they were weights: not distributive."""

    @property
    def value_shape(self):
        return ()

    def zero(self, shape, dtype):
        return jnp.full(shape, -jnp.inf, dtype)

    def one(self, shape, dtype):
        return jnp.zeros(shape, dtype)

    def plus(self, x, axis):
        return jax.nn.logsumexp(x, axis=axis)

    def times(self, a, b):
        return jnp.maximum(a, b)

    def from_scores(self, s):
        return s

    def log_scale(self, x):
        return x


def test_law_checker_catches_a_broken_semiring():
    with pytest.raises(scanalg.LawViolation, match="identity|distributivity"):
        ss.check_semiring_laws(_Broken(), ss.semiring_values(sr.Log()), max_examples=20)


def test_semiring_arguments_are_checked():
    with pytest.raises(TypeError, match="semiring"):
        sr.SemiringMatMul(scanalg.monoids.Sum())
    with pytest.raises(TypeError, match="semiring"):
        sr.ChainMessages("log")
    with pytest.raises(ValueError, match="KMax"):
        sr.KMax(0)
    with pytest.raises(ValueError, match="axis"):
        sr.Log().plus(jnp.zeros((2, 2)), axis=2)
    with pytest.raises(TypeError, match="No strategy"):
        ss.semiring_values(_Broken())


# 6 lists: merged one after another; 11: a tree of pairwise merges down to 6, then so.
@pytest.mark.parametrize("num_lists", [6, 11])
def test_kmax_merge_and_top_k_agree(num_lists):
    rng = np.random.default_rng(0)
    lists = -np.sort(-rng.integers(-3, 3, size=(num_lists, 5, 4)).astype(float), axis=-1)
    lists[0, 1, 2:] = -np.inf
    x = jnp.asarray(lists)
    merged = sr.KMax(4).plus(x, axis=0)  # merges (k <= 8)
    top = sr.KMax(4).argplus(x, axis=0)[0]  # lax.top_k
    assert np.array_equal(np.asarray(merged), np.asarray(top))
    flat = np.sort(np.moveaxis(lists, 0, 1).reshape(5, -1), axis=1)[:, ::-1][:, :4]
    assert np.array_equal(np.asarray(merged), flat)
    big = sr.KMax(9)  # beyond the merge: top_k
    padded = jnp.concatenate([x, jnp.full((num_lists, 5, 5), -jnp.inf)], axis=-1)
    assert np.array_equal(np.asarray(big.plus(padded, 0))[:, :4], flat)


def _values(semiring, rng, shape):
    """Values with nontrivial parts (sums of two scored values), some of them zero."""
    s, t = rng.normal(size=(2, *shape))
    s.flat[0] = -np.inf
    return semiring.add(semiring.from_scores(jnp.asarray(s)), semiring.from_scores(jnp.asarray(t)))


@pytest.mark.parametrize("semiring", [sr.Log(), sr.Entropy()], ids=repr)
def test_linear_form_is_a_homomorphism(semiring):
    """`to_linear` carries sums, products, scores, the prepared matrix-vector product
    and the normalisation of the linear form to those of the semiring;
    `from_linear` inverts it (with a shift of the scores)."""
    linear, to, back = semiring.linear_form(), semiring.to_linear, semiring.from_linear
    rng = np.random.default_rng(4)
    a, b = _values(semiring, rng, (3,)), _values(semiring, rng, (3,))
    w = jnp.asarray(-np.abs(rng.normal(size=(3, 4)))).at[1, 2].set(-jnp.inf)  # <= 0
    s = jnp.array([0.5, -jnp.inf, -2.0])
    y = to(a)
    normalised = linear.normalise_positive(y)
    pairs = [
        (to(semiring.times(a, b)), linear.times(y, to(b))),
        (to(semiring.plus(jnp.stack([a, b]), 0)), linear.plus(jnp.stack([y, to(b)]), 0)),
        (to(semiring.times_scores(a, s)), linear.times_scores(y, s)),
        (to(semiring.from_scores(s)), linear.from_scores(s)),
        (to(semiring.vecmat_scores(a, w)), linear.vecmat_prepared(y, linear.prepare_scores(w))),
        (back(y, 0), a),
        (back(y, 1.5), semiring.times_scores(a, jnp.full(3, 1.5))),
        (back(normalised, semiring.log_scale(semiring.total(a))), a),
        (linear.log_scale(linear.total(normalised)), 0.0),
    ]
    for i, (got, want) in enumerate(pairs):
        assert np.allclose(got, want, atol=1e-12, rtol=1e-12), (i, got, want)


def test_chains_use_the_linear_form_where_declared():
    """A chain with fixed potentials on `Sequential` may run in the linear form (a
    `lax.cond` between it and log space) for `Log` and `Entropy`, not for `KMax`."""
    layout = scanalg.kit.Segments(None, 5)
    u, psi = jnp.zeros((5, 3)), jnp.zeros((3, 3))
    for semiring, has in [(sr.Log(), True), (sr.Entropy(), True), (sr.KMax(2), False)]:
        jaxpr = jax.make_jaxpr(lambda u, p: sr.chain_sum(semiring, u, p, layout, "sequential"))
        assert ("cond[" in str(jaxpr(u, psi))) == has, semiring
        assert (semiring.linear_form() is not None) == has


@pytest.mark.parametrize("semiring", [sr.Entropy(), sr.KMax(3)], ids=["Entropy", "KMax"])
def test_vecmat_scores_matches_the_generic_form(semiring):
    rng = np.random.default_rng(1)
    w = jnp.asarray(rng.normal(size=(3, 4))).at[0, 1].set(-jnp.inf)
    v = semiring.normalise(semiring.from_scores(jnp.asarray(rng.normal(size=3))))[0]
    v = semiring.add(v, semiring.times_scores(v, jnp.array([0.5, -1.0, -jnp.inf])))
    fast, generic = jax.jit(
        lambda v, w: (semiring.vecmat_scores(v, w), semiring.vecmat(v, semiring.from_scores(w)))
    )(v, w)
    assert np.allclose(fast, generic, atol=1e-12)


@pytest.mark.parametrize("semiring", [sr.Log(), sr.KMax(2), sr.Entropy()], ids=str)
def test_chain_messages_laws_hold_up_to_scale(semiring):
    """The chain monoid is projective: its laws hold after normalisation."""
    rng = np.random.default_rng(2)
    monoid = sr.ChainMessages(semiring)

    def element(restart):
        scores = jnp.asarray(rng.normal(size=(3, 3))).at[1, 2].set(-jnp.inf)
        return monoid.lift((jnp.asarray(restart), jnp.asarray(rng.normal(size=3)), scores))

    def canon(x):
        return semiring.normalise(x)[0]

    @jax.jit
    def sides(s, a, b, c):
        combine, act = monoid.combine, monoid.act
        ab_c, a_bc = combine(combine(a, b), c), combine(a, combine(b, c))
        return (
            (ab_c[0], canon(ab_c[1]), act(act(s, a), b), act(s, monoid.identity(a))),
            (a_bc[0], canon(a_bc[1]), act(s, combine(a, b)), s),
        )

    s = canon(semiring.from_scores(jnp.asarray(rng.normal(size=3))))
    for flags in [(False, False, False), (False, True, False), (True, False, True)]:
        lhs, rhs = sides(s, *(element(f) for f in flags))
        assert bool(lhs[0]) == bool(rhs[0])
        assert all(np.allclose(x, y, atol=1e-10) for x, y in zip(lhs[1:], rhs[1:]))


def test_normal_form_is_canonical():
    x = jnp.array([0.3, -1.0, -jnp.inf])
    for semiring in SEMIRINGS:
        v = semiring.from_scores(x)
        y, shift = semiring.normalise(v)
        z, _ = semiring.normalise(semiring.times_scores(v, jnp.full(3, 7.25)))
        assert np.allclose(y, z) and np.isfinite(shift)
        assert np.isclose(semiring.log_scale(semiring.total(y)), 0, atol=1e-12)
        zero, shift = semiring.normalise(semiring.zero((3,), jnp.float64))
        assert float(shift) == 0 and np.array_equal(zero, semiring.zero((3,), jnp.float64))
