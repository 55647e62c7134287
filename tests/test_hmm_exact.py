"""Exact at any dynamic range: states whose probability falls far below the float range
and later dominates again (large log-likelihood gaps, sparse left-to-right chains),
against a log-space forward-backward, for every method, with and without `lengths=`."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hmm_reference import log_space_posterior
from xla_codegen import DEFAULT

import scanalg
from scanalg import hmm

METHODS = (
    scanalg.Sequential(),
    scanalg.Parallel(),
    scanalg.Blocked(block_size=3, outer=scanalg.Parallel()),
)
# (loglik relative, probabilities absolute)
TOL = {jnp.float32: (1e-4, 1e-4), jnp.float64: (1e-8, 1e-8)}
FIELDS = ("filtered_probs", "predicted_probs", "smoothed_probs")


def _assert_within(got, want, atol, name):
    """`|got - want| <= atol` everywhere (NaN fails), reporting the worst entry: one
    pass over arrays of a million steps (`assert_allclose` takes seconds there)."""
    assert got.shape == want.shape, (name, got.shape, want.shape)
    err = np.abs(got - want)
    worst = np.unravel_index(np.argmax(err), err.shape)
    assert err[worst] <= atol, f"{name}: error {err[worst]:.3g} at {worst} (atol {atol})"


def _check(post, ref, dtype, b=None, span=slice(None)):
    """`post` (of sequence `b` of a batch, at packed steps `span`) against `ref`."""
    rel, atol = TOL[dtype]
    loglik = post.marginal_loglik if b is None else post.marginal_loglik[b]
    np.testing.assert_allclose(loglik, ref["marginal_loglik"], rtol=rel)
    for field in FIELDS:
        got = np.asarray(getattr(post, field), np.float64)[span]
        _assert_within(got, ref[field], atol, field)
    if post.trans_probs is not None and post.trans_probs.ndim == 3 - (b is None):
        trans = post.trans_probs if b is None else post.trans_probs[b]
        np.testing.assert_allclose(trans, ref["trans_probs"], atol=10 * atol, rtol=rel)


def _pack(problems):
    """Concatenate `(pi, a, ll)` problems sharing `pi` and a fixed `a`."""
    lengths = np.array([p[2].shape[0] for p in problems])
    return np.concatenate([p[2] for p in problems]), lengths, np.cumsum([0, *lengths])


# --------------------------------------------------------------------------------------
# Two states, A = I: the second state is e^-gap below the first, then e^-gap above.
# --------------------------------------------------------------------------------------

GAPS = {jnp.float32: (88.0, 100.0, 104.0), jnp.float64: (800.0, 1000.0, 1500.0)}


def _gap(gap):
    return np.array([0.5, 0.5]), np.eye(2), np.array([[0.0, -gap], [-2 * gap, 0.0]])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("method", METHODS, ids=repr)
def test_gap_beyond_the_float_range(method, dtype):
    problems = [_gap(g) for g in GAPS[dtype]]
    pi, a, _ = problems[0]
    cast = functools.partial(jnp.asarray, dtype=dtype)
    # All of them as a ragged batch; in float32 one alone too.
    ll, lengths, edges = _pack(problems)
    packed = hmm.hmm_smoother(cast(pi), cast(a), cast(ll), lengths=lengths, method=method)
    for b, problem in enumerate(problems):
        _check(packed, log_space_posterior(*problem), dtype, b, slice(edges[b], edges[b + 1]))
        assert packed.smoothed_probs[edges[b], 1] > 0.99  # the second state, all along
    if dtype == jnp.float32:
        post = hmm.hmm_smoother(*map(cast, problems[1]), method=method)
        _check(post, log_space_posterior(*problems[1]), dtype)


# --------------------------------------------------------------------------------------
# A sparse left-to-right chain with log-likelihoods of scale 100 (float64).
# --------------------------------------------------------------------------------------


def _left_to_right(num_states, stay):
    a = np.eye(num_states) * stay + np.eye(num_states, k=1) * (1 - stay)
    a[-1, -1] = 1.0
    return np.eye(num_states)[0], a


@functools.cache
def _chain():
    pi, a = _left_to_right(6, 0.9)
    ll = 100 * np.random.default_rng(0).normal(size=(300, 6))
    return pi, a, ll


@pytest.mark.parametrize("method", METHODS, ids=repr)
def test_sparse_left_to_right_chain(method):
    """Off by hundreds of nats from T = 67 before (sampler and Viterbi on such chains:
    `test_hmm_numerics.test_sparse_left_to_right_huge_loglikelihoods`)."""
    pi, a, ll = _chain()
    _check(hmm.hmm_smoother(pi, a, ll, method=method), log_space_posterior(pi, a, ll), jnp.float64)
    lengths = np.array([67, 233])
    edges = np.cumsum([0, *lengths])
    packed = hmm.hmm_smoother(pi, a, ll, lengths=lengths, method=method)
    for b in range(len(lengths)):
        span = slice(edges[b], edges[b + 1])
        _check(packed, log_space_posterior(pi, a, ll[span]), jnp.float64, b, span)


# --------------------------------------------------------------------------------------
# float32, a left-to-right chain of 20 states over a million steps, observed with noise
# and occasional outliers that favour the next state by ~100 nats.
# --------------------------------------------------------------------------------------


@functools.cache
def _long_chain(num_steps=10**6, num_states=20, sigma=0.07):
    rng = np.random.default_rng(1)
    pi, a = _left_to_right(num_states, 1 - num_states / num_steps)
    z = np.minimum(np.cumsum(rng.random(num_steps) < num_states / num_steps), num_states - 1)
    z[0] = 0
    z = np.maximum.accumulate(z)
    y = z + sigma * rng.normal(size=num_steps)
    outliers = (rng.random(num_steps) < 1e-3) & (z < num_states - 1)
    y = np.where(outliers, z + 1, y)
    ll = -0.5 * ((y[:, None] - np.arange(num_states)) / sigma) ** 2
    return tuple(jnp.asarray(x, jnp.float32) for x in (pi, a, ll))


@functools.cache
def _reference(length):
    pi, a, ll = (np.asarray(x, np.float64) for x in _long_chain())
    return log_space_posterior(pi, a, ll[:length])


# The methods that combine elements cost K^3 exponentials per element on this path: far
# slower than the sequential one on a CPU, so they get the first 1e4 steps (with about
# ten outliers).
@pytest.mark.parametrize(
    "method, length",
    [
        (scanalg.Sequential(), 10**6),
        (scanalg.Blocked(), 10**4),
        (scanalg.Parallel(), 10**4),
    ],
    ids=["Sequential-1e6", "Blocked-1e4", "Parallel-1e4"],
)
def test_float32_left_to_right_million_steps(method, length):
    inputs = _long_chain()
    if length < inputs[2].shape[0]:
        inputs = (*inputs[:2], inputs[2][:length])
    ref = _reference(length)
    # (run time dominates: XLA's default code generation)
    smoother = jax.jit(functools.partial(hmm.hmm_smoother, method=method), compiler_options=DEFAULT)
    post = smoother(*inputs)
    assert post.smoothed_probs.dtype == jnp.float32
    _check(post, ref, jnp.float32)
