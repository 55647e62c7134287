"""HMM numerics and bad input: long float32 runs, sparse models with huge log-likelihoods,
impossible observations, wrong shapes and invalid probabilities."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import all_methods, core_methods, method_ids
from hmm_reference import (
    log_space_loglik,
    log_space_posterior,
    random_hmm,
    reference,
    viterbi,
)

import scanalg
from scanalg import hmm
from scanalg._methods._auto import count_ops

# The numerics tests here run one method per algorithm (see helpers.core_methods).
CORE_METHODS = core_methods


def _cast(dtype, *arrays):
    return tuple(jnp.asarray(x, dtype) for x in arrays)


def _all_finite(tree):
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))


# Parallel runs a K^3 combine per element and is far slower than the others on a CPU,
# so it gets a shorter length here (its log-likelihood is tested at T = 1e5 below).
@pytest.mark.parametrize(
    "method, length",
    [(scanalg.Sequential(), 10**6), (scanalg.Blocked(), 10**6), (scanalg.Parallel(), 3 * 10**4)],
    ids=["Sequential-1e6", "Blocked-1e6", "Parallel-3e4"],
)
def test_float32_long_sequence(method, length):
    """float32, K = 5: nothing non-finite; filtered and smoothed within 1e-3 of float64."""
    rng = np.random.default_rng(0)
    inputs32 = _cast(jnp.float32, *random_hmm(rng, length, 5))
    inputs64 = _cast(jnp.float64, *inputs32)
    post32 = hmm.hmm_smoother(*inputs32, method=method)
    post64 = hmm.hmm_smoother(*inputs64, method="sequential")
    assert post32.smoothed_probs.dtype == jnp.float32
    assert _all_finite(post32)
    post32, post64 = (
        jax.tree.map(lambda x: np.asarray(x, np.float64), p) for p in (post32, post64)
    )
    for name in ("filtered_probs", "predicted_probs", "smoothed_probs"):
        error = np.max(np.abs(getattr(post32, name) - getattr(post64, name)))
        assert error < 1e-3, (name, float(error))
    rel = abs(post32.marginal_loglik - post64.marginal_loglik) / abs(post64.marginal_loglik)
    assert rel < 2e-6


@pytest.fixture(scope="module")
def loglik_problem():
    rng = np.random.default_rng(1)
    inputs32 = _cast(jnp.float32, *random_hmm(rng, 10**5, 10))
    exact = hmm.hmm_filter(*_cast(jnp.float64, *inputs32)).marginal_loglik
    return inputs32, float(exact)


@pytest.mark.parametrize("method", all_methods, ids=method_ids)
def test_float32_marginal_loglik(method, loglik_problem):
    """float32 at T = 1e5, K = 10: within 2e-6 relative of float64 (pairwise sum)."""
    inputs32, exact = loglik_problem
    loglik = hmm.hmm_filter(*inputs32, method=method).marginal_loglik
    assert loglik.dtype == jnp.float32
    assert abs(float(loglik) - exact) / abs(exact) < 2e-6


# float32 over a million steps, near-uniform emissions: the error of marginal_loglik is
# a sum of a million per-step rounding errors, so any bias per step shows. The bound is
# dynamax's own float32 error (its serial filter) on the same case, and what unbiased
# rounding gives.
BIAS_CASES = {
    "random-matrix": np.random.default_rng(10).dirichlet(np.ones(2), size=2),
    "rows-0.9/0.1-0.3/0.7": np.array([[0.9, 0.1], [0.3, 0.7]]),  # float32 sums are not 1
}


@functools.cache
def _bias_problem(name):
    """float32 inputs, and the float64 log-likelihood of exactly those inputs (the
    transition matrix's rows renormalised in float64)."""
    rng = np.random.default_rng(11)
    ll = 0.01 * rng.normal(size=(10**6, 2))
    ll = ll - np.log(np.mean(np.exp(ll), axis=1, keepdims=True))  # log p(y_t | ...) near 0
    inputs = _cast(jnp.float32, [0.5, 0.5], BIAS_CASES[name], ll)
    pi, a, ll = (np.asarray(x, np.float64) for x in inputs)
    a = a / a.sum(-1, keepdims=True)
    exact = hmm.hmm_filter(pi, a, ll, method="sequential").marginal_loglik
    return inputs, float(exact)


@pytest.mark.parametrize("name", BIAS_CASES)
@pytest.mark.parametrize("method", CORE_METHODS[:2] + (scanalg.Blocked(),), ids=repr)
def test_float32_loglik_bias_over_a_million_steps(method, name):
    dynamax = pytest.importorskip("dynamax.hidden_markov_model")
    inputs, exact = _bias_problem(name)
    with jax.numpy_rank_promotion("allow"):  # (dynamax relies on rank promotion)
        bound = abs(float(_dynamax_filter(dynamax)(*inputs).marginal_loglik) - exact)
    loglik = _filter32(method)(*inputs).marginal_loglik
    assert loglik.dtype == jnp.float32
    error = float(loglik) - exact
    assert abs(error) <= bound, (error, bound)
    # Unbiased rounding: the errors of a million terms of size 1e-2 (ulp ~1e-9) add up
    # like a random walk, to about 1e-6; a bias of a tenth of an ulp per step is 1e-4.
    assert abs(error) < 1e-4, error


@functools.cache
def _dynamax_filter(dynamax):
    return jax.jit(dynamax.hmm_filter)


def _filter32(method):
    return lambda pi, a, ll: hmm.hmm_filter(pi, a, ll, method=method)


def _left_to_right_matrix(num_states, rng):
    """Stay, advance by one or by two: a sparse upper-triangular transition matrix."""
    k = num_states
    a = np.zeros((k, k))
    for i in range(k):
        nxt = [j for j in (i, i + 1, i + 2) if j < k]
        a[i, nxt] = rng.dirichlet(np.ones(len(nxt)))
    pi = np.zeros(k)
    pi[0] = 1.0
    return pi, a


def _adversarial(seed, num_steps=25, num_states=5):
    """Log-likelihoods of scale 100 that disagree with the model: probabilities as small
    as e^-700 come back to dominate later (this is what a clamp to eps gets wrong)."""
    rng = np.random.default_rng(seed)
    pi, a = _left_to_right_matrix(num_states, rng)
    return pi, a, 100 * rng.normal(size=(num_steps, num_states))


def _simulated(seed, num_steps=25, num_states=5, sigma=0.07):
    """Data drawn from the model, observed with noise `sigma`: log-likelihood gaps of
    about 100 between neighbouring states."""
    rng = np.random.default_rng(seed)
    pi, a = _left_to_right_matrix(num_states, rng)
    a = a + 5 * np.eye(num_states)  # slow progress along the chain
    a = a / a.sum(-1, keepdims=True)
    z = [0]
    for _ in range(num_steps - 1):
        z.append(rng.choice(num_states, p=a[z[-1]]))
    y = np.array(z) + sigma * rng.normal(size=num_steps)
    ll = -0.5 * ((y[:, None] - np.arange(num_states)) / sigma) ** 2
    return pi, a, ll - np.log(sigma * np.sqrt(2 * np.pi))


def _everything(method):
    def run(key, pi, a, ll):
        return dict(
            smoother=hmm.hmm_smoother(pi, a, ll, method=method),
            sample=hmm.hmm_posterior_sample(key, pi, a, ll, method=method),
            mode=hmm.hmm_posterior_mode(pi, a, ll, method=method),
        )

    return run


def _check_paths(paths, a):
    for path in paths:
        path = np.asarray(path)
        assert path[0] == 0 and np.all(a[path[:-1], path[1:]] > 0)


@pytest.mark.parametrize("method", CORE_METHODS, ids=repr)
def test_dense_model_likely_state_of_tiny_predicted_mass(method):
    """A dense model (the probability form) whose observation favours, by 100 nats, a
    state of predicted mass 1e-9: the step's likelihood is about 1e-9 of the
    prediction's mass, far from one, and must keep its digits (not -inf in float32)."""
    a = np.array([[1 - 1e-9, 1e-9], [1e-9, 1 - 1e-9]])
    pi = np.array([1.0, 0.0])
    ll = np.array([[0.0, 0.0], [-100.0, 0.0], [0.0, -3.0]])
    exact = log_space_loglik(pi, a, ll)
    for dtype, rtol in [(jnp.float64, 1e-12), (jnp.float32, 1e-6)]:
        out = hmm.hmm_filter(*_cast(dtype, pi, a, ll), method=method)
        np.testing.assert_allclose(float(out.marginal_loglik), exact, rtol=rtol)


@pytest.mark.parametrize("method", CORE_METHODS, ids=[repr(m) for m in CORE_METHODS])
def test_sparse_left_to_right_huge_loglikelihoods(method):
    """No clamping: a sparse left-to-right model with log-likelihoods of scale 100 gives
    the exact log-likelihood (against a log-space recursion) in float64 and float32, for
    random log-likelihoods and for data from the model."""
    key = jax.random.key(0)
    problems = [_adversarial(seed) for seed in range(3)] + [_simulated(0)]
    for number, (pi, a, ll) in enumerate(problems):
        exact = log_space_loglik(pi, a, ll)
        ref = log_space_posterior(pi, a, ll)
        out = _everything(method)(key, *_cast(jnp.float64, pi, a, ll))
        np.testing.assert_allclose(out["smoother"].marginal_loglik, exact, rtol=1e-8)
        assert _all_finite(out["smoother"])
        np.testing.assert_allclose(out["smoother"].smoothed_probs.sum(-1), 1, rtol=1e-10)
        for name in ("filtered_probs", "predicted_probs", "smoothed_probs"):
            np.testing.assert_allclose(getattr(out["smoother"], name), ref[name], atol=1e-8)
        np.testing.assert_array_equal(out["mode"], viterbi(pi, a, ll))
        _check_paths([out["sample"][1], out["mode"]], a)
        path = np.asarray(out["sample"][1])  # of positive posterior probability
        assert np.all(ref["smoothed_probs"][np.arange(len(path)), path] > 0)
        out32 = _everything(method)(key, *_cast(jnp.float32, pi, a, ll))
        assert _all_finite(out32["smoother"])
        _check_paths([out32["sample"][1], out32["mode"]], a)
        # Exact in float32 too (log-space forms: nothing lost below the float range).
        np.testing.assert_allclose(out32["smoother"].marginal_loglik, exact, rtol=1e-5)


@pytest.mark.parametrize("method", CORE_METHODS, ids=[repr(m) for m in CORE_METHODS])
def test_impossible_step(method):
    """A step where every state is impossible: marginal_loglik is -inf, nothing is NaN,
    and the documented values come back."""
    rng = np.random.default_rng(3)
    pi, a, ll = random_hmm(rng, 25, 5)  # the shapes of the test above: no new compile
    bad = 3
    ll[bad] = -np.inf
    out = jax.device_get(_everything(method)(jax.random.key(1), *_cast(jnp.float64, pi, a, ll)))
    post = out["smoother"]
    assert post.marginal_loglik == -np.inf
    for leaf in jax.tree.leaves(out):
        assert not np.any(np.isnan(leaf))
    # Up to the bad step, the filter of the prefix; at the bad step the prediction too.
    prefix = reference(pi, a, ll[:bad])
    np.testing.assert_allclose(post.filtered_probs[:bad], prefix["filtered_probs"], atol=1e-12)
    np.testing.assert_allclose(post.predicted_probs[:bad], prefix["predicted_probs"], atol=1e-12)
    expected_prediction = prefix["filtered_probs"][-1] @ a
    np.testing.assert_allclose(post.predicted_probs[bad], expected_prediction, atol=1e-12)
    # From the bad step on, zero vectors; smoothed and transition probabilities all zero.
    assert np.all(post.filtered_probs[bad:] == 0) and np.all(post.predicted_probs[bad + 1 :] == 0)
    assert np.all(post.smoothed_probs == 0) and np.all(post.initial_probs == 0)
    assert np.all(post.trans_probs == 0)
    for path in [out["sample"][1], out["mode"]]:
        assert path.shape == (25,) and np.all((0 <= path) & (path < 5))


def test_impossible_first_and_last_step():
    rng = np.random.default_rng(4)
    pi, a, ll = random_hmm(rng, 4, 2)
    for bad in (0, 3):
        ll_bad = ll.copy()
        ll_bad[bad] = -np.inf
        post = hmm.hmm_smoother(pi, a, ll_bad)
        assert post.marginal_loglik == -np.inf
        assert not any(np.any(np.isnan(x)) for x in jax.tree.leaves(post))
        assert np.all(post.filtered_probs[bad:] == 0)


# --------------------------------------------------------------------------------------
# Bad input.
# --------------------------------------------------------------------------------------

K, T = 3, 5
GOOD = dict(
    initial_probs=jnp.ones(K) / K,
    transition_matrix=jnp.ones((K, K)) / K,
    log_likelihoods=jnp.zeros((T, K)),
)
BAD_SHAPES = [
    (
        "initial_probs",
        jnp.ones(K + 1) / (K + 1),
        r"`initial_probs` must have shape \(K,\) = \(3,\)",
    ),
    ("initial_probs", jnp.ones((1, K)) / K, "`initial_probs`"),
    ("transition_matrix", jnp.ones((K, K + 1)), r"\(K, K\) = \(3, 3\)"),
    ("transition_matrix", jnp.ones((T, K, K)) / K, r"\(T-1, K, K\) = \(4, 3, 3\)"),
    ("transition_matrix", jnp.ones((T - 1, K, 2)) / 2, "`transition_matrix`"),
    ("transition_matrix", jnp.ones(K) / K, "`transition_matrix`"),
    ("log_likelihoods", jnp.zeros((T, K + 1)), "`initial_probs`"),
    ("log_likelihoods", jnp.zeros(T), "`log_likelihoods` must have shape \\(T, K\\)"),
    ("log_likelihoods", jnp.zeros((0, K)), "T >= 1"),
]


@pytest.mark.parametrize("name, value, match", BAD_SHAPES)
@pytest.mark.parametrize(
    "fn",
    [
        hmm.hmm_filter,
        hmm.hmm_smoother,
        hmm.hmm_posterior_mode,
        lambda *args: hmm.hmm_posterior_sample(jax.random.key(0), *args),
    ],
    ids=["filter", "smoother", "mode", "sample"],
)
def test_bad_shapes_raise_at_trace_time(fn, name, value, match):
    args = dict(GOOD, **{name: value})
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(fn, *args.values())


BAD_VALUES = [
    ("initial_probs", jnp.array([1.2, -0.1, -0.1]), "`initial_probs` must be a probability vector"),
    ("initial_probs", jnp.array([0.5, 0.2, 0.2]), "`initial_probs` must be a probability vector"),
    ("transition_matrix", jnp.eye(K).at[0, 1].set(0.1), "row of `transition_matrix`"),
    ("transition_matrix", jnp.eye(K).at[1].set(jnp.array([-0.5, 1.0, 0.5])), "nonnegative"),
    ("transition_matrix", jnp.full((T - 1, K, K), 0.3), "row of `transition_matrix`"),
    ("log_likelihoods", jnp.zeros((T, K)).at[2, 1].set(jnp.nan), "NaN or \\+inf"),
    ("log_likelihoods", jnp.zeros((T, K)).at[2, 1].set(jnp.inf), "NaN or \\+inf"),
]


@pytest.mark.parametrize("name, value, match", BAD_VALUES)
def test_bad_values_raise(name, value, match):
    args = dict(GOOD, **{name: value})
    with pytest.raises(eqx.EquinoxRuntimeError, match=match):
        jax.block_until_ready(hmm.hmm_filter(*args.values()))


# dynamax's extra HMM functions check the values they share with `hmm_filter` too.
EXTRAS = {
    "backward_filter": lambda pi, a, ll: hmm.hmm_backward_filter(a, ll),
    "two_filter_smoother": hmm.hmm_two_filter_smoother,
    "fixed_lag_smoother": lambda pi, a, ll: hmm.hmm_fixed_lag_smoother(pi, a, ll, 2),
}


@pytest.mark.parametrize("name, value, match", [BAD_VALUES[2], BAD_VALUES[5]])
@pytest.mark.parametrize("fn", list(EXTRAS.values()), ids=list(EXTRAS))
def test_bad_values_raise_in_the_extras(fn, name, value, match):
    args = dict(GOOD, **{name: value})
    with pytest.raises(eqx.EquinoxRuntimeError, match=match):
        jax.block_until_ready(fn(*args.values()))


@pytest.mark.parametrize("k", [2, 5, 20, 200])
def test_float32_normalised_matrix_cast_to_float64_is_accepted(k):
    """Stochastic to the precision it was made in: rows normalised in float32, then cast
    to float64, are accepted (their float64 row sums are off by up to ~k ulps of
    float32)."""
    rng = np.random.default_rng(k)
    raw = rng.random((k, k)).astype(np.float32) ** 4  # uneven rows: large rounding
    a = (raw / raw.sum(1, keepdims=True)).astype(np.float64)
    pi = (raw[0] / raw[0].sum()).astype(np.float64)
    assert np.abs(a.sum(1) - 1).max() > 1e-8  # beyond float64's own tolerance
    loglik = hmm.hmm_filter(pi, a, np.zeros((4, k))).marginal_loglik
    assert np.isfinite(loglik)


def test_tolerance_is_dtype_aware():
    """Rows that sum to one up to float32 rounding are accepted."""
    rng = np.random.default_rng(5)
    pi, a, ll = random_hmm(rng, 4, 3)
    pi32, a32, ll32 = _cast(jnp.float32, pi, a, ll)
    a32 = a32 * (1 + 1e-6)
    assert np.isfinite(hmm.hmm_filter(pi32, a32, ll32).marginal_loglik)
    with pytest.raises(eqx.EquinoxRuntimeError):
        hmm.hmm_filter(*_cast(jnp.float64, pi, a * (1 + 1e-6), ll))


@pytest.mark.parametrize("entry", [hmm.hmm_filter, hmm.hmm_smoother], ids=lambda f: f.__name__)
def test_parallel_memory_at_a_million_steps(entry):
    """Compiled, not run: at T = 1e6, K = 20 (float32) `method="parallel"` holds at most
    3x its outputs (outputs and temporaries alive at once, XLA's buffer assignment):
    its leaves lift the (T, K, K) elements inside loops and keep one product per leaf.
    The transition matrix is concrete, as when called directly."""
    t, k = 10**6, 20
    a = np.full((k, k), 1.0 / k, np.float32)
    shapes = [jax.ShapeDtypeStruct(s, jnp.float32) for s in [(k,), (t, k)]]
    run = jax.jit(lambda pi, ll: entry(pi, a, ll, method="parallel"))
    memory = run.lower(*shapes).compile().memory_analysis()
    out = memory.output_size_in_bytes
    assert out >= t * k * 4 * 2  # (filtered and predicted at least)
    assert (out + memory.temp_size_in_bytes) / out <= 3, memory.temp_size_in_bytes / out


@pytest.mark.parametrize("method", ["parallel", "sequential"])
def test_viterbi_memory_at_a_million_steps(method):
    """Compiled, not run: the Viterbi path at T = 1e6, K = 20 (float32) holds at most 3x
    its output (the int32 path): scores and back-pointers exist for one block of steps
    at a time, not for all T x K (20x the output each)."""
    t, k = 10**6, 20
    shapes = [jax.ShapeDtypeStruct(s, jnp.float32) for s in [(k,), (k, k), (t, k)]]
    run = jax.jit(lambda *args: hmm.hmm_posterior_mode(*args, method=method))
    memory = run.lower(*shapes).compile().memory_analysis()
    out = memory.output_size_in_bytes
    assert out == t * 4
    assert (out + memory.temp_size_in_bytes) / out <= 3, memory.temp_size_in_bytes / out


# Long enough for the Viterbi pass to work in blocks (N * K over 2 * 2**18: blocks of
# 2**16 steps at K = 4, the last one partial).
_BLOCKED_STEPS, _BLOCKED_STATES = 2 * 2**16 + 1001, 4


@functools.cache
def _blocked_viterbi_problem(time_varying):
    rng = np.random.default_rng(21)
    pi, a, ll = random_hmm(rng, _BLOCKED_STEPS, _BLOCKED_STATES, time_varying=time_varying)
    if not time_varying:  # one sequence
        return (pi, a, ll), None, viterbi(pi, a, ll)
    # sequences across the block boundaries (2**16, 2**17), and one of length one
    lengths = np.array([40000, 25529, 1, 5, 3, 66535])
    assert lengths.sum() == _BLOCKED_STEPS
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    paths = [viterbi(pi, a[lo : hi - 1], ll[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    return (pi, a, ll), lengths, np.concatenate(paths)


@pytest.mark.parametrize("time_varying", [False, True], ids=["one-fixed", "ragged-tv"])
@pytest.mark.parametrize("method", CORE_METHODS, ids=repr)
def test_viterbi_in_blocks_matches_the_recursion(method, time_varying):
    """Past the block threshold the path is still the exact Viterbi path (a NumPy
    log-space recursion, float64): one sequence with a fixed matrix, and a ragged batch
    with a time-varying matrix whose sequences end around the block boundaries."""
    (pi, a, ll), lengths, expected = _blocked_viterbi_problem(time_varying)
    path = hmm.hmm_posterior_mode(pi, a, ll, lengths=lengths, method=method)
    np.testing.assert_array_equal(path, expected)


# --------------------------------------------------------------------------------------
# Many states: loops over the states, not unrolled (compile time flat in K)
# --------------------------------------------------------------------------------------


def test_program_size_logarithmic_in_the_number_of_states():
    """Beyond a few states, what runs once per state (backward-kernel columns, counts,
    inverse-CDF draws) is a loop, not unrolled: the traced program of every entry point
    grows by a constant per doubling of K (pairwise sums), not in proportion to K (an
    unrolled loop compiled for 20 s at K = 100)."""
    sizes = {}
    for k in (16, 32, 128):
        pi, a, ll = random_hmm(np.random.default_rng(0), 20, k, zeros=True)
        a_tv = np.broadcast_to(a, (19, k, k))
        key = jax.random.key(0)
        sizes[k] = np.array(
            [
                count_ops(hmm.hmm_smoother, pi, a, ll),
                count_ops(hmm.hmm_smoother, pi, a_tv, ll),
                count_ops(functools.partial(hmm.hmm_posterior_sample, key), pi, a, ll),
            ]
        )
    assert np.all(sizes[128] - sizes[16] <= 3 * (sizes[32] - sizes[16])), sizes


def test_many_states_match_the_unrolled_loops(monkeypatch):
    """K = 12 (a state loop) against the log-space reference (smoother and per-step
    transition probabilities, time-varying, sparse), and against the same code with
    its state loops unrolled (`_UNROLL_STATES` raised): the same smoother (to rounding)
    and the same posterior draws from the same key."""
    pi, a, ll = random_hmm(np.random.default_rng(3), 40, 12, time_varying=True, zeros=True)
    key = jax.random.key(1)

    def run():
        jax.clear_caches()  # (trace again, with the current `_UNROLL_STATES`)
        post = hmm.hmm_smoother(pi, a, ll)
        return post, hmm.hmm_posterior_sample(key, pi, a, ll, num_samples=50)

    looped, looped_draws = run()
    ref = log_space_posterior(pi, a, ll, per_step=True)
    for name in ("marginal_loglik", "smoothed_probs", "trans_probs"):
        np.testing.assert_allclose(getattr(looped, name), ref[name], atol=1e-10, err_msg=name)
    monkeypatch.setattr(scanalg._numerics, "_UNROLL_STATES", 64)
    unrolled, unrolled_draws = run()
    same = functools.partial(np.testing.assert_allclose, rtol=1e-13, atol=1e-15)
    jax.tree.map(same, looped, unrolled)  # (to rounding: fused differently)
    jax.tree.map(np.testing.assert_array_equal, looped_draws, unrolled_draws)
    jax.clear_caches()
