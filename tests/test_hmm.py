"""HMM inference against brute-force enumeration over all K^T paths, for every method."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from helpers import all_methods, method_ids
from hmm_reference import random_hmm, reference

from scanalg import hmm

# (T, K, time-varying, structural zeros, some -inf log-likelihoods)
CASES = [
    (1, 3, False, False, False),
    (5, 3, False, True, True),
    (6, 2, True, True, True),
]
CASE_IDS = [
    f"T{t}-K{k}{'-tv' if tv else ''}{'-zeros' if z else ''}{'-inf' if i else ''}"
    for t, k, tv, z, i in CASES
]
BATCH = 3  # random instances per case, all run in one compiled call


def _instances(case, seed=0):
    t, k, tv, zeros, neg_inf = case
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(BATCH):
        pi, a, ll = random_hmm(rng, t, k, time_varying=tv, zeros=zeros)
        if neg_inf:  # knock out one state at some steps (never a whole step)
            for step in range(0, t, 2):
                ll[step, rng.integers(k)] = -np.inf
        out.append((pi, a, ll))
    return out


def _everything(method, instances):
    """All outputs for each instance (direct calls: each compiles once per shape, in the
    numerical form its transition matrix needs)."""
    out = [
        dict(
            smoother=hmm.hmm_smoother(pi, a, ll, method=method),
            mode=hmm.hmm_posterior_mode(pi, a, ll, method=method),
        )
        for pi, a, ll in instances
    ]
    return jax.device_get(out)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("method", all_methods, ids=method_ids)
def test_against_enumeration(method, case):
    instances = _instances(case)
    everything = _everything(method, instances)
    tv = case[2]
    for (pi, a, ll), out in zip(instances, everything):
        ref = reference(pi, a, ll)
        post = out["smoother"]
        np.testing.assert_allclose(post.marginal_loglik, ref["marginal_loglik"], rtol=1e-12)
        np.testing.assert_allclose(post.filtered_probs, ref["filtered_probs"], atol=1e-12)
        np.testing.assert_allclose(post.predicted_probs, ref["predicted_probs"], atol=1e-12)
        np.testing.assert_allclose(post.smoothed_probs, ref["smoothed_probs"], atol=1e-12)
        np.testing.assert_allclose(post.initial_probs, ref["smoothed_probs"][0], atol=1e-12)
        expected_trans = ref["trans_probs"] if tv else ref["trans_probs"].sum(0)
        assert post.trans_probs.shape == expected_trans.shape
        np.testing.assert_allclose(post.trans_probs, expected_trans, atol=1e-12)
        np.testing.assert_array_equal(out["mode"], ref["mode"])


@pytest.mark.parametrize("case", [(2, 2, True, False, False), CASES[1]], ids=["T2-tv", "T5"])
def test_filter_against_enumeration(case):
    """`hmm_filter` itself (the smoother test covers its fields for every method)."""
    for pi, a, ll in _instances(case, seed=1):
        ref = reference(pi, a, ll)
        filt = hmm.hmm_filter(pi, a, ll)
        assert isinstance(filt, hmm.HMMPosteriorFiltered)
        np.testing.assert_allclose(filt.marginal_loglik, ref["marginal_loglik"], rtol=1e-12)
        np.testing.assert_allclose(filt.filtered_probs, ref["filtered_probs"], atol=1e-12)
        np.testing.assert_allclose(filt.predicted_probs, ref["predicted_probs"], atol=1e-12)


# --------------------------------------------------------------------------------------
# Posterior sampling.
# --------------------------------------------------------------------------------------

SAMPLE_CASE = dict(t=4, k=3, samples=20_000)


def _sampling_problem():
    rng = np.random.default_rng(42)
    pi, a, ll = random_hmm(rng, SAMPLE_CASE["t"], SAMPLE_CASE["k"], time_varying=True, zeros=True)
    return pi, a, ll


@functools.cache
def _samples(method):
    pi, a, ll = _sampling_problem()
    loglik, states = hmm.hmm_posterior_sample(
        jax.random.key(7), pi, a, ll, method=method, num_samples=SAMPLE_CASE["samples"]
    )
    return float(loglik), np.asarray(states)


@pytest.mark.parametrize("method", all_methods, ids=method_ids)
def test_sampler_chi_square(method):
    """The joint distribution of sampled paths is the exact posterior."""
    pi, a, ll = _sampling_problem()
    ref = reference(pi, a, ll)
    t, k, n = SAMPLE_CASE["t"], SAMPLE_CASE["k"], SAMPLE_CASE["samples"]
    loglik, states = _samples(method)
    np.testing.assert_allclose(loglik, ref["marginal_loglik"], rtol=1e-12)
    assert states.shape == (n, t) and states.dtype == np.int32
    codes = states @ (k ** np.arange(t - 1, -1, -1))  # same order as reference paths
    counts = np.bincount(codes, minlength=k**t)
    expected = n * ref["path_probs"]
    # Impossible paths (structural zeros) are never drawn.
    assert counts[expected == 0].sum() == 0
    assert (expected == 0).any()
    # Pool the cells with small expectations, then Pearson's chi-square.
    small = expected < 5
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    keep = exp > 0
    stat = np.sum((obs[keep] - exp[keep]) ** 2 / exp[keep])
    threshold = scipy.stats.chi2.ppf(1 - 1e-6, df=keep.sum() - 1)
    assert stat < threshold, (stat, threshold)


def test_sampler_same_states_for_every_method_small():
    reference_states = _samples(all_methods[0])[1]
    for method in all_methods[1:]:
        np.testing.assert_array_equal(_samples(method)[1], reference_states)


def test_sampler_single_and_shapes():
    pi, a, ll = _sampling_problem()
    key = jax.random.key(3)
    loglik, states = hmm.hmm_posterior_sample(key, pi, a, ll)
    assert states.shape == (SAMPLE_CASE["t"],)
    _, again = hmm.hmm_posterior_sample(key, pi, a, ll)
    np.testing.assert_array_equal(states, again)
    _, other = hmm.hmm_posterior_sample(jax.random.key(4), pi, a, ll, num_samples=50)
    assert other.shape == (50, SAMPLE_CASE["t"])
    assert len({tuple(s) for s in np.asarray(other)}) > 1
    with pytest.raises(ValueError, match="num_samples"):
        hmm.hmm_posterior_sample(key, pi, a, ll, num_samples=0)
    for bad in (True, np.True_, 2.0, "3"):  # a bool is not a count (True is an int)
        with pytest.raises(TypeError, match="num_samples"):
            hmm.hmm_posterior_sample(key, pi, a, ll, num_samples=bad)
    assert hmm.hmm_posterior_sample(key, pi, a, ll, num_samples=np.int64(2))[1].shape[0] == 2


def test_long_sequence_identical_across_methods():
    """T = 10 000: every method draws the same path from the same key."""
    rng = np.random.default_rng(5)
    pi, a, ll = random_hmm(rng, 10_000, 4, zeros=True)
    key = jax.random.key(11)
    draws = [
        np.asarray(hmm.hmm_posterior_sample(key, pi, a, ll, method=method)[1])
        for method in all_methods
    ]
    for d in draws[1:]:
        np.testing.assert_array_equal(d, draws[0])
    assert np.all(a[draws[0][:-1], draws[0][1:]] > 0)  # only possible transitions
    other = np.asarray(hmm.hmm_posterior_sample(jax.random.key(12), pi, a, ll)[1])
    assert not np.array_equal(other, draws[0])


# --------------------------------------------------------------------------------------
# Gradients of the marginal log-likelihood.
# --------------------------------------------------------------------------------------


def _brute_loglik(pi, a, ll):
    """The path sum log p(y) in jnp, by enumeration (differentiable)."""
    t, k = ll.shape
    grids = jnp.stack(jnp.meshgrid(*[jnp.arange(k)] * t, indexing="ij"), -1).reshape(-1, t)
    a_t = a if a.ndim == 3 else jnp.broadcast_to(a, (t - 1, k, k))
    logp = jnp.log(pi)[grids[:, 0]] + ll[jnp.arange(t), grids].sum(-1)
    logp = logp + jnp.log(a_t[jnp.arange(t - 1), grids[:, :-1], grids[:, 1:]]).sum(-1)
    return jax.scipy.special.logsumexp(logp)


def test_gradients():
    """d marginal_loglik / d(initial_probs, transition_matrix, log_likelihoods): the
    same for every method, equal to the gradient of the path sum by enumeration (so
    also off the probability simplex), and to finite differences."""
    rng = np.random.default_rng(8)
    problems = [
        tuple(jnp.asarray(x) for x in random_hmm(rng, 5, 3, time_varying=tv))
        for tv in (False, True)
    ]

    def grads_for(method):
        grad = jax.grad(
            lambda *args: hmm.hmm_filter(*args, method=method).marginal_loglik, argnums=(0, 1, 2)
        )
        return jax.jit(lambda problems: [grad(*p) for p in problems])

    expected = [jax.grad(_brute_loglik, argnums=(0, 1, 2))(*p) for p in problems]
    # Every method on the time-varying problem; the default method on both.
    for method in all_methods:
        for g, e in zip(grads_for(method)(problems[1:])[0], expected[1]):
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10)
    for g, e in zip(grads_for("auto")(problems[:1])[0], expected[0]):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10)
    # Finite differences along directions that keep the inputs valid.
    f = jax.jit(lambda *args: hmm.hmm_filter(*args).marginal_loglik)
    h = 1e-5
    for p, grads in zip(problems, expected):
        for _ in range(3):
            dirs = [rng.normal(size=x.shape) for x in p]
            dirs[0] -= dirs[0].mean()
            dirs[1] -= dirs[1].mean(-1, keepdims=True)  # rows keep summing to one
            plus = f(*(x + h * d for x, d in zip(p, dirs)))
            minus = f(*(x - h * d for x, d in zip(p, dirs)))
            fd = (plus - minus) / (2 * h)
            analytic = sum(jnp.vdot(g, d) for g, d in zip(grads, dirs))
            np.testing.assert_allclose(fd, analytic, rtol=1e-7, atol=1e-9)
