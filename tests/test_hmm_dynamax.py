"""HMM inference against dynamax (the `oracle` extra), on random and time-varying models."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hmm_reference import random_hmm

import scanalg
from scanalg import hmm

dynamax_inference = pytest.importorskip("dynamax.hidden_markov_model.inference")

# The default (what users get) and the parallel path; every method is checked against
# brute-force enumeration in test_hmm.py.
METHODS = [scanalg.Auto(), scanalg.Parallel()]


@functools.cache
def _problem(time_varying):
    rng = np.random.default_rng(17 + time_varying)
    pi, a, ll = random_hmm(rng, 1000, 4, time_varying=time_varying)
    return tuple(jnp.asarray(x) for x in (pi, a, ll))


@functools.cache
def _dynamax(time_varying):
    pi, a, ll = _problem(time_varying)
    with jax.numpy_rank_promotion("allow"):  # (dynamax relies on rank promotion)
        return (
            jax.device_get(dynamax_inference.hmm_smoother(pi, a, ll)),
            np.asarray(dynamax_inference.hmm_posterior_mode(pi, a, ll)),
        )


@pytest.mark.parametrize("time_varying", [False, True], ids=["fixed", "time-varying"])
@pytest.mark.parametrize("method", METHODS, ids=[repr(m) for m in METHODS])
def test_against_dynamax(method, time_varying):
    pi, a, ll = _problem(time_varying)
    expected, expected_mode = _dynamax(time_varying)

    post = jax.device_get(hmm.hmm_smoother(pi, a, ll, method=method))
    mode = np.asarray(hmm.hmm_posterior_mode(pi, a, ll, method=method))
    np.testing.assert_allclose(post.marginal_loglik, expected.marginal_loglik, rtol=1e-10)
    np.testing.assert_allclose(post.filtered_probs, expected.filtered_probs, atol=1e-10)
    np.testing.assert_allclose(post.predicted_probs, expected.predicted_probs, atol=1e-10)
    np.testing.assert_allclose(post.smoothed_probs, expected.smoothed_probs, atol=1e-10)
    np.testing.assert_allclose(post.initial_probs, expected.initial_probs, atol=1e-10)
    assert post.trans_probs.shape == expected.trans_probs.shape
    np.testing.assert_allclose(post.trans_probs, expected.trans_probs, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(mode, expected_mode)


def test_result_types_match_dynamax():
    assert hmm.HMMPosteriorFiltered._fields == dynamax_inference.HMMPosteriorFiltered._fields
    assert hmm.HMMPosterior._fields == dynamax_inference.HMMPosterior._fields
