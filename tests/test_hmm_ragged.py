"""Ragged HMM batches: packed sequences give exactly the per-sequence answers."""

import functools
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import core_methods, tree_allclose
from hmm_reference import inverse_cdf_path, random_hmm, reference

from scanalg import hmm

K = 3
LENGTHS = (5, 1, 7, 2, 4)  # includes a sequence of length one
N = sum(LENGTHS)
EDGES = np.cumsum((0, *LENGTHS))
METHODS = core_methods  # the whole ragged pipeline, compiled per method
TOL = dict(rtol=1e-9, atol=1e-12)


def _problem(tv, seed=0):
    rng = np.random.default_rng(seed)
    pi, a, ll = random_hmm(rng, N, K, time_varying=tv, zeros=True)
    for t in range(0, N, 3):  # knock out one state at some steps
        ll[t, rng.integers(K)] = -np.inf
    return jnp.asarray(pi), jnp.asarray(a), jnp.asarray(ll)


def _sequence(b, a, ll, tv):
    s, e = EDGES[b], EDGES[b + 1]
    return (a[s : e - 1] if tv else a), ll[s:e]


def _run(method, tv, pi, a, ll, lengths, key):
    """Everything, packed (direct calls: each compiles once, in the numerical form the
    transition matrix needs)."""
    kwargs = dict(lengths=lengths, method=method)
    return dict(
        smoother=hmm.hmm_smoother(pi, a, ll, **kwargs),
        filter=hmm.hmm_filter(pi, a, ll, **kwargs),
        mode=hmm.hmm_posterior_mode(pi, a, ll, **kwargs),
        sample=hmm.hmm_posterior_sample(key, pi, a, ll, **kwargs),
    )


@functools.cache
def _references(tv):
    """Each sequence alone, by enumeration over its paths (the same for every method)."""
    pi, a, ll = _problem(tv)
    u = jax.random.uniform(jax.random.key(3), (N,), ll.dtype)
    refs = []
    for b, (s, e) in enumerate(zip(EDGES[:-1], EDGES[1:])):
        a_b, ll_b = _sequence(b, a, ll, tv)
        ref = reference(pi, a_b, ll_b)
        ref["initial_probs"] = ref["smoothed_probs"][0]
        if not tv:
            ref["trans_probs"] = ref["trans_probs"].sum(0)
        # The same uniforms give the same path as sampling the sequence alone (by the
        # inverse CDF of the backward kernels, in NumPy).
        sample = inverse_cdf_path(ref["filtered_probs"], a_b, u[s:e])
        refs.append((SimpleNamespace(**ref), ref["mode"], sample))
    return refs


@pytest.mark.parametrize("tv", [False, True], ids=["fixed", "time-varying"])
@pytest.mark.parametrize("method", METHODS, ids=repr)
def test_packed_equals_per_sequence(method, tv):
    pi, a, ll = _problem(tv)
    out = _run(method, tv, pi, a, ll, np.array(LENGTHS), jax.random.key(3))
    smoother, filt = out["smoother"], out["filter"]
    loglik, sample = out["sample"]
    assert tree_allclose(tuple(filt), tuple(smoother[:3]), **TOL)
    for b, (ref, mode, alone) in enumerate(_references(tv)):
        s, e = EDGES[b], EDGES[b + 1]
        np.testing.assert_allclose(smoother.marginal_loglik[b], ref.marginal_loglik, **TOL)
        np.testing.assert_allclose(loglik[b], ref.marginal_loglik, **TOL)
        for field in ("filtered_probs", "predicted_probs", "smoothed_probs"):
            np.testing.assert_allclose(
                getattr(smoother, field)[s:e], getattr(ref, field), **TOL, err_msg=field
            )
        np.testing.assert_allclose(smoother.initial_probs[b], ref.initial_probs, **TOL)
        if tv:
            np.testing.assert_allclose(smoother.trans_probs[s : e - 1], ref.trans_probs, **TOL)
            if e < N:  # the step into the next sequence carries no probability
                assert np.all(smoother.trans_probs[e - 1] == 0)
        else:
            np.testing.assert_allclose(smoother.trans_probs[b], ref.trans_probs, **TOL)
        np.testing.assert_array_equal(out["mode"][s:e], mode)
        np.testing.assert_array_equal(sample[s:e], alone)


def test_one_sequence_is_the_unragged_function():
    pi, a, ll = _problem(False, seed=1)
    key = jax.random.key(0)
    lengths = np.array([N])
    got = hmm.hmm_posterior_sample(key, pi, a, ll, lengths=lengths, num_samples=2)
    want = hmm.hmm_posterior_sample(key, pi, a, ll, num_samples=2)
    np.testing.assert_allclose(got[0], [want[0]], **TOL)
    np.testing.assert_array_equal(got[1], want[1])
    smoothed = hmm.hmm_smoother(pi, a, ll, lengths=lengths).smoothed_probs
    np.testing.assert_allclose(smoothed, hmm.hmm_smoother(pi, a, ll).smoothed_probs, **TOL)
    # All sequences of length one: the smoothed marginals are the filtered ones.
    ones = hmm.hmm_smoother(pi, a, ll, lengths=np.ones(N, int))
    np.testing.assert_allclose(ones.smoothed_probs, ones.filtered_probs, **TOL)
    assert np.all(ones.trans_probs == 0)


def test_bad_lengths():
    pi, a, ll = _problem(False)
    with pytest.raises(ValueError, match=f"sum to {N + 1}, but .* has {N} time steps"):
        hmm.hmm_filter(pi, a, ll, lengths=np.array([*LENGTHS[:-1], LENGTHS[-1] + 1]))
    with pytest.raises(ValueError, match=f"sum to {N - 4}, but .* has {N} time steps"):
        hmm.hmm_smoother(pi, a, ll, lengths=[*LENGTHS[:-1]])
    with pytest.raises(ValueError, match="at least one time step"):
        hmm.hmm_posterior_mode(pi, a, ll, lengths=np.array([0, *LENGTHS]))
    with pytest.raises(ValueError, match="1-D"):
        hmm.hmm_filter(pi, a, ll, lengths=np.array(LENGTHS)[None])
    with pytest.raises(TypeError, match="integers"):
        hmm.hmm_filter(pi, a, ll, lengths=np.array(LENGTHS, float))
    with pytest.raises(ValueError, match="num_samples"):
        hmm.hmm_posterior_sample(jax.random.key(0), pi, a, ll, lengths=LENGTHS, num_samples=0)
    # Traced lengths are checked when the function runs.
    run = jax.jit(lambda lengths: hmm.hmm_filter(pi, a, ll, lengths=lengths).filtered_probs)
    with pytest.raises(Exception, match="do not sum"):
        jax.block_until_ready(run(jnp.array([N - 1, 2])))
    run(jnp.array([N - 1, 1]))  # ... and fine when they are right
