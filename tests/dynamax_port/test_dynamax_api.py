"""dynamax's API on scanalg: call forms, bad input, and the functions scanalg adds for
it, against brute-force enumeration and log-space recursions (dynamax itself only where
its own parameter objects are the subject)."""

import inspect
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import core_methods, method_id
from hmm_reference import log_space_filter, path_log_joint, random_hmm, reference

import scanalg
from scanalg import hmm, lgssm
from scanalg.models.hmm._dynamax import dynamax_signature as hmm_signature
from scanalg.models.lgssm._dynamax import dynamax_signature as lgssm_signature

# The public functions have dynamax's signatures (the decorator is idempotent: wrapping
# them again gives them back).
hmm_filter = hmm.hmm_filter
hmm_smoother = hmm.hmm_smoother
hmm_posterior_sample = hmm.hmm_posterior_sample
hmm_posterior_mode = hmm.hmm_posterior_mode

T, K, WINDOW = 6, 3, 3


def _problem(time_varying, seed=0, scale=1.0):
    pi, a, ll = random_hmm(np.random.default_rng(seed), T, K, time_varying=time_varying)
    return jnp.asarray(pi), jnp.asarray(a), jnp.asarray(scale * ll)


def _close(x, y, atol=1e-10):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)


# --------------------------------------------------------------------------------------
# Call forms.
# --------------------------------------------------------------------------------------


def test_signatures_are_dynamaxs():
    names = lambda f: list(inspect.signature(f).parameters)  # noqa: E731
    assert names(hmm_filter)[:4] == [
        "initial_distribution",
        "transition_matrix",
        "log_likelihoods",
        "transition_fn",
    ]
    assert names(hmm_smoother)[3:5] == ["transition_fn", "compute_trans_probs"]
    assert names(hmm_posterior_sample)[:5] == [
        "key",
        "initial_distribution",
        "transition_matrix",
        "log_likelihoods",
        "transition_fn",
    ]
    assert names(hmm.hmm_fixed_lag_smoother)[3:5] == ["window_size", "transition_fn"]
    assert names(hmm.hmm_backward_filter)[:3] == [
        "transition_matrix",
        "log_likelihoods",
        "transition_fn",
    ]
    assert names(hmm.compute_transition_probs) == [
        "transition_matrix",
        "hmm_posterior",
        "transition_fn",
    ]
    for f in (hmm_filter, hmm_smoother, hmm_posterior_sample):
        assert {"initial_probs", "method", "lengths"} <= set(names(f))
        assert hmm_signature(f) is f  # (idempotent)
    assert "jitter" in names(lgssm.lgssm_posterior_sample)
    assert (
        lgssm_signature(jitter=True)(lgssm.lgssm_posterior_sample) is lgssm.lgssm_posterior_sample
    )
    for f in (scanalg.hmm_filter, scanalg.hmm_posterior_mode, scanalg.lgssm_smoother):
        assert getattr(f, "__dynamax_signature__", False)


def test_call_forms_agree():
    pi, a, ll = _problem(False)
    expected = hmm.hmm_smoother(pi, a, ll)
    forms = [
        hmm_smoother(pi, a, ll),
        hmm_smoother(initial_distribution=pi, transition_matrix=a, log_likelihoods=ll),
        hmm_smoother(initial_probs=pi, transition_matrix=a, log_likelihoods=ll),
        hmm_smoother(pi, a, ll, None, True, method="sequential"),
    ]
    for post in forms:
        for x, y in zip(post, expected):
            _close(x, y)
    assert hmm_smoother(pi, a, ll, None, False).trans_probs is None
    assert hmm_smoother(pi, a, ll, compute_trans_probs=False).trans_probs is None
    key = jax.random.PRNGKey(3)
    _, path = hmm_posterior_sample(key, pi, a, ll)
    np.testing.assert_array_equal(path, hmm.hmm_posterior_sample(key, pi, a, ll)[1])
    np.testing.assert_array_equal(hmm_posterior_mode(pi, a, ll), hmm.hmm_posterior_mode(pi, a, ll))


def test_transition_fn_is_the_time_varying_matrix():
    pi, a, ll = _problem(True)

    def fn(t):
        return a[t]

    pairs = [
        (hmm_filter(pi, None, ll, fn), hmm_filter(pi, a, ll)),
        (hmm_smoother(pi, None, ll, fn), hmm_smoother(pi, a, ll)),
        (hmm_posterior_mode(pi, None, ll, transition_fn=fn), hmm_posterior_mode(pi, a, ll)),
        (hmm.hmm_two_filter_smoother(pi, None, ll, fn), hmm.hmm_two_filter_smoother(pi, a, ll)),
        (hmm.hmm_fixed_lag_smoother(pi, None, ll, 2, fn), hmm.hmm_fixed_lag_smoother(pi, a, ll, 2)),
        (hmm.hmm_backward_filter(None, ll, fn), hmm.hmm_backward_filter(a, ll)),
    ]
    key = jax.random.PRNGKey(0)
    pairs.append(
        (hmm_posterior_sample(key, pi, None, ll, fn), hmm_posterior_sample(key, pi, a, ll))
    )
    post = hmm.hmm_smoother(pi, a, ll)
    pairs.append(
        (hmm.compute_transition_probs(None, post, fn), hmm.compute_transition_probs(a, post))
    )
    for got, want in pairs:
        for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_array_equal(x, y)
    # One step: no transitions at all.
    one = hmm_filter(pi, None, ll[:1], fn)
    _close(one.filtered_probs, hmm.hmm_filter(pi, a[:0], ll[:1]).filtered_probs)


def test_lengths_and_methods_pass_through():
    pi, a, ll = _problem(False)
    ragged = hmm_smoother(pi, a, ll, lengths=[2, 4], method=scanalg.Parallel())
    for first, length in ((0, 2), (2, 4)):
        alone = hmm.hmm_smoother(pi, a, ll[first : first + length])
        _close(ragged.smoothed_probs[first : first + length], alone.smoothed_probs)


def test_bad_transition_arguments():
    pi, a, ll = _problem(True)
    with pytest.raises(ValueError, match="transition_matrix.*transition_fn"):
        hmm_filter(pi, a, ll, lambda t: a[t])
    with pytest.raises(ValueError, match="transition_matrix.*transition_fn"):
        hmm_filter(pi, None, ll)
    with pytest.raises(ValueError, match=r"transition_fn.*\(3, 3\).*\(4, 4\)"):
        hmm_filter(pi, None, ll, lambda t: jnp.eye(K + 1))
    with pytest.raises(ValueError, match="transition_fn"):
        hmm.hmm_backward_filter(None, ll, lambda t: a)  # (T-1, K, K) per step
    with pytest.raises(TypeError, match="transition_fn"):
        hmm_filter(pi, None, ll, "not a function")
    with pytest.raises(TypeError, match="initial_distribution.*initial_probs"):
        hmm_filter(
            initial_distribution=pi, initial_probs=pi, transition_matrix=a, log_likelihoods=ll
        )
    with pytest.raises(ValueError, match="transition_matrix"):
        hmm.hmm_backward_filter(a[:-1], ll)
    with pytest.raises(ValueError, match="window_size"):
        hmm.hmm_fixed_lag_smoother(pi, a, ll, 0)
    with pytest.raises((TypeError, ValueError), match="window_size"):  # (or the type checker)
        hmm.hmm_fixed_lag_smoother(pi, a, ll, 2.0)


# --------------------------------------------------------------------------------------
# The functions scanalg adds, against independent references, on the core methods.
# --------------------------------------------------------------------------------------


def _log_backward(a, ll):
    """log beta_t = log p(y_{t+1:T} | z_t) by the backward recursion in log space."""
    a = np.asarray(a) if np.ndim(a) == 3 else np.broadcast_to(a, (ll.shape[0] - 1, K, K))
    logs = [np.zeros(ll.shape[1])]
    with np.errstate(divide="ignore"):
        for t in range(ll.shape[0] - 2, -1, -1):
            terms = np.log(a[t]) + (ll[t + 1] + logs[0])[None, :]
            top = terms.max(axis=1, keepdims=True)
            logs.insert(0, np.log(np.exp(terms - top).sum(axis=1)) + top[:, 0])
    return np.stack(logs)


def _lse(x, axis=-1):
    top = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top, axis)


@pytest.mark.parametrize("scale", [1.0, 300.0], ids=["ordinary", "extreme range"])
@pytest.mark.parametrize("time_varying", [False, True], ids=["fixed", "time-varying"])
@pytest.mark.parametrize("method", core_methods, ids=[method_id(m) for m in core_methods])
def test_backward_filter_and_two_filter_smoother(method, time_varying, scale):
    # At scale 300 the log-likelihoods differ by thousands of nats between states:
    # any product of unscaled messages underflows, and the log-space references do not.
    pi, a, ll = _problem(time_varying, seed=1, scale=scale)
    log_normalizer, messages = hmm.hmm_backward_filter(a, ll, method=method)
    llv = np.asarray(ll)
    log_beta = _log_backward(np.asarray(a), llv)
    # dynamax's scaling: beta_t / sum_k e^{l_{t+1}} beta_{t+1}, ones at the end.
    scaled = np.exp(log_beta[:-1] - _lse(llv[1:] + log_beta[1:])[:, None])
    _close(messages[:-1], scaled, atol=1e-9)
    _close(messages[-1], np.ones(K))
    _close(log_normalizer, _lse(llv[0] + log_beta[0]), atol=1e-9 * max(1, scale))
    post = hmm.hmm_two_filter_smoother(pi, a, ll, method=method)
    _, log_alpha = log_space_filter(pi, a, llv)
    log_joint = log_alpha + log_beta
    _close(post.smoothed_probs, np.exp(log_joint - _lse(log_joint)[:, None]), atol=1e-9)
    _close(post.marginal_loglik, _lse(log_alpha[-1]), atol=1e-9 * max(1, scale))
    assert np.all(np.isfinite(np.asarray(post.trans_probs)))


@pytest.mark.parametrize("time_varying", [False, True], ids=["fixed", "time-varying"])
@pytest.mark.parametrize("method", core_methods, ids=[method_id(m) for m in core_methods])
def test_fixed_lag_smoother_brute_force(method, time_varying):
    pi, a, ll = _problem(time_varying, seed=2)
    post = hmm.hmm_fixed_lag_smoother(pi, a, ll, WINDOW, method=method)
    ref = reference(pi, a, ll)
    for t in range(T):
        zs, logp = path_log_joint(pi, a, ll, upto=t)
        probs = np.exp(logp - _lse(logp))
        for j in range(WINDOW):
            s = t - WINDOW + 1 + j
            if s < 0:  # before the start: zeros, as in dynamax
                for field in ("filtered_probs", "predicted_probs", "smoothed_probs"):
                    _close(getattr(post, field)[t, j], np.zeros(K))
                continue
            marginal = [probs[zs[:, s] == k].sum() for k in range(K)]
            _close(post.smoothed_probs[t, j], marginal)
            _close(post.filtered_probs[t, j], ref["filtered_probs"][s])
            _close(post.predicted_probs[t, j], ref["predicted_probs"][s])
        # log p(y_{t-w+1:t} | y_{1:t-w})
        before = _lse(path_log_joint(pi, a, ll, upto=t - WINDOW)[1]) if t >= WINDOW else 0.0
        _close(post.marginal_loglik[t], _lse(logp) - before)
    _close(post.initial_probs, post.smoothed_probs[0])
    assert post.trans_probs is None
    ones = hmm.hmm_fixed_lag_smoother(pi, a, ll, 1, method=method)
    _close(ones.smoothed_probs[:, 0], ref["filtered_probs"])


@pytest.mark.parametrize("time_varying", [False, True], ids=["fixed", "time-varying"])
def test_compute_transition_probs_brute_force(time_varying):
    pi, a, ll = _problem(time_varying, seed=3)
    ref = reference(pi, a, ll)["trans_probs"]
    got = hmm.compute_transition_probs(a, hmm.hmm_two_filter_smoother(pi, a, ll))
    _close(got, ref if time_varying else ref.sum(axis=0))


def test_under_jit_vmap_and_grad():
    pi, a, ll = _problem(False, seed=4)
    batch = jnp.stack([ll, 2 * ll])
    fixed_lag = jax.jit(jax.vmap(lambda x: hmm.hmm_fixed_lag_smoother(pi, a, x, 2)))
    for b in range(2):
        _close(
            fixed_lag(batch).smoothed_probs[b],
            hmm.hmm_fixed_lag_smoother(pi, a, batch[b], 2).smoothed_probs,
        )
    # The two-filter log-likelihood is the forward filter's: so are their gradients.
    two = jax.grad(lambda x: hmm.hmm_two_filter_smoother(pi, a, x).marginal_loglik)(ll)
    one = jax.grad(lambda x: hmm.hmm_filter(pi, a, x).marginal_loglik)(ll)
    _close(two, one)
    # d/dl_0 of the backward log-normaliser is the posterior of z_0 under a flat prior.
    grad = jax.grad(lambda x: hmm.hmm_backward_filter(a, x)[0])(ll)
    flat = hmm.hmm_smoother(jnp.full((K,), 1 / K), a, ll).smoothed_probs[0]
    _close(grad[0], flat)


# --------------------------------------------------------------------------------------
# LGSSM parameters.
# --------------------------------------------------------------------------------------


def _lgssm_arrays(num_timesteps=5, n=2, k=2):
    rng = np.random.default_rng(5)
    F = 0.9 * np.eye(n) + 0.05 * rng.normal(size=(num_timesteps, n, n))
    return dict(
        initial_mean=np.zeros(n),
        initial_cov=np.eye(n),
        dynamics_weights=F,
        dynamics_cov=0.1 * np.eye(n),
        emissions_weights=rng.normal(size=(k, n)),
        emissions_cov=0.5 * np.eye(k),
        dynamics_bias=0.1 * np.ones(n),
    ), rng.normal(size=(num_timesteps, k))


def test_make_lgssm_params_and_names():
    arrays, _ = _lgssm_arrays()
    arrays["dynamics_weights"] = arrays["dynamics_weights"][0]
    params = lgssm.make_lgssm_params(**arrays)
    assert isinstance(params, lgssm.LGSSMParams)
    _close(params.dynamics.bias, arrays["dynamics_bias"])
    assert params.dynamics.input_weights is None
    assert lgssm.ParamsLGSSMInitial is lgssm.LGSSMInitial
    assert lgssm.ParamsLGSSMDynamics is lgssm.LGSSMDynamics
    assert lgssm.ParamsLGSSMEmissions is lgssm.LGSSMEmissions
    rebuilt = lgssm.ParamsLGSSM(params.initial, params.dynamics, params.emissions)
    assert isinstance(rebuilt, lgssm.LGSSMParams)
    assert jax.tree.structure(rebuilt) == jax.tree.structure(params)
    assert lgssm.as_lgssm_params(params) is params


class _Initial(NamedTuple):
    mean: object
    cov: object


class _Part(NamedTuple):
    weights: object
    bias: object
    input_weights: object
    cov: object


class _Params(NamedTuple):
    initial: object
    dynamics: object
    emissions: object


def _dynamax_style(arrays, **changes):
    a = {**arrays, **changes}
    return _Params(
        _Initial(a["initial_mean"], a["initial_cov"]),
        _Part(a["dynamics_weights"], a.get("dynamics_bias"), None, a["dynamics_cov"]),
        _Part(a["emissions_weights"], None, None, a["emissions_cov"]),
    )


def test_as_lgssm_params_reads_dynamaxs_meaning():
    arrays, y = _lgssm_arrays()
    expected = lgssm.lgssm_smoother(lgssm.make_lgssm_params(**arrays), y)
    smoother = lgssm_signature(lgssm.lgssm_smoother)
    F = jnp.asarray(arrays["dynamics_weights"])
    # Functions of time, mixed precision, NaN in the unused entry 0, NamedTuples kept.
    forms = [
        _dynamax_style(arrays, dynamics_weights=lambda t: F[t]),
        _dynamax_style(arrays, dynamics_bias=lambda t: jnp.full(2, 0.1)),
        _dynamax_style(arrays, emissions_weights=np.float32(arrays["emissions_weights"])),
        _dynamax_style(arrays, dynamics_weights=F.at[0].set(jnp.nan)),
    ]
    for params in forms:
        converted = lgssm.as_lgssm_params(params, num_timesteps=y.shape[0])
        assert type(converted) is _Params and type(converted.dynamics) is _Part
        assert {x.dtype for x in jax.tree.leaves(converted)} == {jnp.dtype(jnp.float64)}
        got = smoother(params, y)
        for x, z in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
            _close(x, z, atol=1e-6)  # (float32 emission weights: float32 rounding)
    # A (T, k) emission covariance is time-varying and diagonal, as in dynamax.
    diag = np.abs(np.random.default_rng(6).normal(size=(y.shape[0], 2))) + 0.1
    tv = lgssm.as_lgssm_params(_dynamax_style(arrays, emissions_cov=diag), y.shape[0])
    _close(tv.emissions.cov, jax.vmap(jnp.diag)(diag))
    with pytest.raises(ValueError, match="emissions.cov"):
        lgssm.as_lgssm_params(_dynamax_style(arrays, emissions_cov=lambda t: jnp.eye(2)), 5)
    with pytest.raises(TypeError, match="num_timesteps"):
        lgssm.as_lgssm_params(_dynamax_style(arrays, dynamics_weights=lambda t: F[t]))
    with pytest.raises(TypeError, match="ParamsLGSSM"):
        lgssm.as_lgssm_params(object())


def test_jitter_argument():
    def sampler(key, params, emissions, inputs=None, *, method="auto", jitter=0.0):
        return jitter

    wrapped = lgssm_signature(jitter=True)(sampler)
    arrays, y = _lgssm_arrays()
    params = lgssm.make_lgssm_params(**arrays)
    assert wrapped(None, params, y, None, 0.25) == 0.25
    assert wrapped(None, params, y, jitter=0.5) == 0.5
    # The public sampler takes dynamax's jitter, positionally or by keyword: zero is
    # the default; a positive one widens every backward conditional.
    key = jax.random.PRNGKey(0)
    plain = lgssm.lgssm_posterior_sample(key, params, y)
    _close(lgssm.lgssm_posterior_sample(key, params, y, None, 0.0), plain)
    jittered = lgssm.lgssm_posterior_sample(key, params, y, jitter=0.25)
    _close(lgssm.lgssm_posterior_sample(key, params, y, None, 0.25), jittered)
    assert not np.allclose(np.asarray(jittered), np.asarray(plain))
