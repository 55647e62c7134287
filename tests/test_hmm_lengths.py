"""The public HMM functions accept packed ragged batches through `lengths=`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scanalg


def _problem():
    rng = np.random.default_rng(7)
    k = 3
    pi = jnp.asarray(rng.dirichlet(np.ones(k)))
    a = jnp.asarray(rng.dirichlet(np.ones(k), size=k))
    ll = jnp.asarray(rng.normal(size=(12, k)))
    return pi, a, ll, (5, 1, 6)


# A loop and a parallel scan (every method runs these functions in test_hmm.py).
@pytest.mark.parametrize("method", ["sequential", "parallel"])
def test_lengths_give_per_sequence_answers(method):
    pi, a, ll, lengths = _problem()
    lens = jnp.asarray(lengths)
    packed_f = scanalg.hmm_filter(pi, a, ll, lengths=lens, method=method)
    packed_s = scanalg.hmm_smoother(pi, a, ll, lengths=lens, method=method)
    assert isinstance(packed_f, scanalg.hmm.RaggedHMMPosteriorFiltered)
    assert isinstance(packed_s, scanalg.hmm.RaggedHMMPosterior)
    assert packed_f.marginal_loglik.shape == packed_s.marginal_loglik.shape == (len(lengths),)
    assert packed_s.initial_probs.shape == (len(lengths), 3)
    assert packed_s.trans_probs.shape == (len(lengths), 3, 3)
    packed_m = scanalg.hmm_posterior_mode(pi, a, ll, lengths=lens, method=method)
    start = 0
    for b, n in enumerate(lengths):
        part = ll[start : start + n]
        alone = scanalg.hmm_smoother(pi, a, part, method=method)
        assert isinstance(alone, scanalg.HMMPosterior) and alone.marginal_loglik.shape == ()
        np.testing.assert_allclose(packed_f.marginal_loglik[b], alone.marginal_loglik, rtol=1e-10)
        np.testing.assert_allclose(
            packed_s.smoothed_probs[start : start + n], alone.smoothed_probs, atol=1e-10
        )
        np.testing.assert_array_equal(
            packed_m[start : start + n], scanalg.hmm_posterior_mode(pi, a, part, method=method)
        )
        start += n
    _, states = scanalg.hmm_posterior_sample(
        jax.random.PRNGKey(0), pi, a, ll, lengths=lens, method=method, num_samples=3
    )
    assert states.shape == (3, 12)
    assert int(states.min()) >= 0 and int(states.max()) < 3


def test_inconsistent_lengths_name_both_numbers():
    pi, a, ll, _ = _problem()
    with pytest.raises(ValueError, match=r"sum to 11.*12 time steps"):
        scanalg.hmm_filter(pi, a, ll, lengths=jnp.array([5, 6]))
