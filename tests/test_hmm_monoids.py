"""The HMM monoids obey the monoid and action laws (scanalg.check_laws), including with
structural zeros and -inf log-scales, and their products do not underflow."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import core_methods
from hypothesis import strategies as st

import scanalg
from scanalg.hmm import (
    Evidence,
    HMMBackward,
    HMMForward,
    HMMLogBackward,
    HMMLogForward,
    LogMatrix,
    MaxPlus,
    ScaledMatrix,
)

K = 3
METHODS = core_methods  # check_laws compiles each method per drawn case


def _seeded(build):
    """A strategy from a function of a NumPy generator (Hypothesis picks the seed)."""
    return st.integers(0, 2**32 - 1).map(lambda seed: build(np.random.default_rng(seed)))


def _stochastic_rows(rng, shape, zeros=True):
    """Rows on the simplex; about a quarter of the entries structural zeros."""
    x = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
    if zeros:
        mask = rng.random(x.shape) < 0.25
        mask[..., 0] &= mask[..., 1:].all(-1) == 0  # keep a positive entry per row
        x = np.where(mask, 0.0, x)
        x = x / x.sum(-1, keepdims=True)
    return x


def _scaled_matrix(rng):
    """Normal form: rows sum to one, or are zero with log-scale -inf; max log-scale 0."""
    matrix = _stochastic_rows(rng, (K, K))
    log_scale = 20 * rng.normal(size=K)
    if rng.random() < 0.3:
        dead = rng.integers(K)
        matrix[dead], log_scale[dead] = 0.0, -np.inf
    return ScaledMatrix(matrix, log_scale - np.max(log_scale))


def _probability_vector(rng):
    return _stochastic_rows(rng, (K,))


def _log_matrix(rng):
    """Normal form: rows have maximum 0 (or are all -inf with offset -inf); max offset 0."""
    matrix = 5 * rng.normal(size=(K, K))
    matrix[rng.random((K, K)) < 0.25] = -np.inf
    matrix[np.arange(K), rng.integers(K, size=K)] = 0.0
    matrix = matrix - matrix.max(-1, keepdims=True)
    offset = 20 * rng.normal(size=K)
    if rng.random() < 0.3:
        dead = rng.integers(K)
        matrix[dead], offset[dead] = -np.inf, -np.inf
    return LogMatrix(matrix, offset - np.max(offset))


def _score_vector(rng):
    x = 5 * rng.normal(size=K)
    x[rng.random(K) < 0.2] = -np.inf
    x[rng.integers(K)] = 0.0
    return x - x.max()


def _kernel_input(rng):
    """(filtered probabilities, transition matrix) with every column reachable."""
    matrix = _stochastic_rows(rng, (K, K))
    matrix[:, rng.permutation(K)] += 0.1 * np.eye(K)  # no zero column
    matrix = matrix / matrix.sum(-1, keepdims=True)
    return rng.dirichlet(np.ones(K)), matrix


def _kernel(rng):
    return np.asarray(HMMBackward().lift(tuple(map(jnp.asarray, _kernel_input(rng)))))


def _normal_form(tree):
    """Elements are defined up to their normal form (rows normalised, offsets shifted)."""
    if isinstance(tree, ScaledMatrix):
        matrix, log_scale = (np.asarray(x, np.float64) for x in tree)
        rows = matrix.sum(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            matrix = np.where(rows[..., None] > 0, matrix / rows[..., None], 0.0)
            log_scale = np.where(rows > 0, log_scale + np.log(rows), -np.inf)
        top = np.max(log_scale, axis=-1, keepdims=True)
        return ScaledMatrix(matrix, log_scale - np.where(np.isfinite(top), top, 0))
    if isinstance(tree, LogMatrix):
        matrix, offset = (np.asarray(x, np.float64) for x in tree)
        rows = matrix.max(-1)
        finite = np.isfinite(rows)
        matrix = matrix - np.where(finite, rows, 0)[..., None]
        offset = np.where(finite, offset + np.where(finite, rows, 0), -np.inf)
        top = np.max(offset, axis=-1, keepdims=True)
        return LogMatrix(matrix, offset - np.where(np.isfinite(top), top, 0))
    return tree


def _equal(x, y):
    return scanalg.laws.allclose(_normal_form(x), _normal_form(y), rtol=1e-7, atol=1e-9)


def test_hmm_forward_laws():
    """Elements with zero rows and -inf log-scales; scanned inputs are log-likelihood
    vectors that `lift` pairs with a fixed matrix."""
    a = jnp.asarray(_stochastic_rows(np.random.default_rng(0), (K, K)))
    scanalg.check_laws(
        HMMForward(a),
        _seeded(_scaled_matrix),
        states=_seeded(_probability_vector),
        inputs=_seeded(lambda rng: 30 * rng.normal(size=K)),
        methods=METHODS,
        max_examples=10,
        equal=_equal,
    )


def test_hmm_backward_laws():
    scanalg.check_laws(
        HMMBackward(),
        _seeded(_kernel),
        states=_seeded(_probability_vector),
        inputs=_seeded(_kernel_input),
        methods=METHODS,
        max_examples=10,
        equal=_equal,
    )


def test_hmm_log_forward_laws():
    """The log-space filter: log-matrices with -inf entries and offsets, log-probability
    states, log-likelihood inputs that `lift` pairs with a fixed sparse matrix."""
    a = _stochastic_rows(np.random.default_rng(2), (K, K))
    with np.errstate(divide="ignore"):
        log_a = jnp.asarray(np.log(a))
    scanalg.check_laws(
        HMMLogForward(log_a),
        _seeded(_log_matrix),
        states=_seeded(_score_vector),
        inputs=_seeded(lambda rng: 30 * rng.normal(size=K)),
        methods=METHODS,
        max_examples=10,
        equal=_equal,
    )


def _restart_input(rng, log=False):
    """((filtered, matrix), restart): in log space for `HMMLogBackward`."""
    filtered, matrix = _kernel_input(rng)
    if log:
        with np.errstate(divide="ignore"):
            filtered, matrix = np.log(filtered), np.log(matrix)
    return (filtered, matrix), rng.random() < 0.3


def test_hmm_log_backward_laws_with_restarts():
    scanalg.check_laws(
        HMMLogBackward(restarts=True),
        _seeded(_kernel),
        states=_seeded(_probability_vector),
        inputs=_seeded(lambda rng: _restart_input(rng, log=True)),
        methods=METHODS,
        max_examples=10,
        equal=_equal,
    )


def test_backward_inputs_agree():
    """`act_input` is `act` of `lift` with restarts, and the log-space kernels are the
    probability-space ones."""
    rng = np.random.default_rng(3)
    inputs = [_restart_input(rng) for _ in range(6)]
    x = jax.tree.map(lambda *v: jnp.asarray(np.stack(v)), *inputs)
    states = jnp.asarray(np.stack([_probability_vector(rng) for _ in range(6)]))
    log_x = jax.tree.map(
        lambda v: jnp.where(v > 0, jnp.log(jnp.where(v > 0, v, 1)), -jnp.inf), x[0]
    )
    for monoid, xs in [
        (HMMBackward(restarts=True), x),
        (HMMLogBackward(restarts=True), (log_x, x[1])),
    ]:
        got = jax.vmap(monoid.act_input)(states, xs)
        expected = jax.vmap(monoid.act)(states, jax.vmap(monoid.lift)(xs))
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
        kernels = jax.vmap(monoid.lift)(xs)
        np.testing.assert_allclose(
            kernels, jax.vmap(HMMBackward(restarts=True).lift)(x), atol=1e-14
        )
    restarted = np.asarray(x[1])
    np.testing.assert_allclose(got[restarted], np.asarray(x[0][0])[restarted], atol=1e-14)


def test_max_plus_laws():
    scanalg.check_laws(
        MaxPlus(),
        _seeded(_log_matrix),
        states=_seeded(_score_vector),
        methods=METHODS,
        max_examples=10,
        equal=_equal,
    )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_long_product_does_not_underflow(dtype):
    """A product of 2000 steps whose rows differ by thousands of nats keeps every row."""
    rng = np.random.default_rng(1)
    a = jnp.asarray(_stochastic_rows(rng, (K, K), zeros=False), dtype)
    ll = jnp.asarray(30 * rng.normal(size=(2000, K)), dtype)
    total = scanalg.reduce(HMMForward(a), ll, method="sequential")
    assert np.all(np.isfinite(total.log_scale))
    np.testing.assert_allclose(total.matrix.sum(-1), 1, rtol=1e-5)
    assert np.ptp(np.asarray(total.log_scale)) > 0


def test_evidence_shifts_first_rows_over_the_support():
    """`Evidence.of(ll, support, rows)`: the given rows are shifted by their largest
    log-likelihood on the support, the others by their largest overall, and `scaled`
    is exp(ll - shift) capped at one (finite off the support)."""
    ll = np.array([[0.0, 5.0, -1.0], [2.0, -3.0, 1.0], [4.0, 0.5, -np.inf], [1.0, 1.0, 3.0]])
    support = np.array([True, False, True])
    rows = np.array([0, 2])
    ev = Evidence.of(jnp.asarray(ll), jnp.asarray(support), jnp.asarray(rows))
    shift = np.array([0.0, 2.0, 4.0, 3.0])
    np.testing.assert_array_equal(ev.shift, shift)
    np.testing.assert_allclose(ev.scaled, np.exp(np.minimum(ll - shift[:, None], 0)))
    assert ev.scaled[0, 1] == 1  # off the support, above the shift: capped
    np.testing.assert_array_equal(Evidence.of(jnp.asarray(ll)).shift, ll.max(1))
