"""LGSSM inference (Kalman filter, RTS smoother, posterior sampler) against the exact
answer from conditioning the dense joint Gaussian, for every method."""

import functools

import equinox as eqx
import jax
import numpy as np
import pytest
from helpers import all_methods, core_methods
from lgssm_reference import dense_posterior, random_model

import scanalg
from scanalg import lgssm

FILTER_FIELDS = (
    "marginal_loglik",
    "filtered_means",
    "filtered_covariances",
    "predicted_means",
    "predicted_covariances",
)
SMOOTHER_FIELDS = ("smoothed_means", "smoothed_covariances", "smoothed_cross_covariances")

_ALL_TV = (
    "dynamics_weights",
    "dynamics_cov",
    "dynamics_bias",
    "dynamics_input_weights",
    "emissions_weights",
    "emissions_bias",
    "emissions_input_weights",
    "emissions_cov",
)

# name: (seed, T, state_dim, emission_dim, input_dim, options). Between them: inputs,
# every parameter time-varying, full and diagonal (fixed and time-varying) emission
# covariances, missing rows at the start, middle and end, T = 1 and an all-missing T = 2.
CASES = {
    "tv-inputs-missing": (0, 7, 3, 2, 2, dict(time_varying=_ALL_TV, missing=(0, 4))),
    "tvdiagR-missing-last": (
        1,
        6,
        2,
        2,
        0,
        dict(diag_R=True, time_varying=("emissions_cov",), missing=(2, 5)),
    ),
    "T1-inputs": (3, 1, 2, 2, 1, dict()),
    "T2-all-missing-diagR": (4, 2, 2, 1, 0, dict(diag_R=True, missing=(0, 1))),
}
# The first case runs with every method; the others with a sequential and a parallel one.
CASE_METHODS = [("tv-inputs-missing", m) for m in all_methods] + [
    (c, m) for c in list(CASES)[1:] for m in (scanalg.Sequential(), scanalg.Parallel())
]
CASE_METHOD_IDS = [f"{c}-{m!r}" for c, m in CASE_METHODS]
GRAD_METHODS = core_methods  # a gradient of the whole pipeline per method


def _case(name, dtype=np.float64):
    seed, T, n, k, m, opts = CASES[name]
    kw, y, u = random_model(seed, T, n, k, m, **opts)
    params = lgssm.LGSSMParams(**{key: np.asarray(v, dtype) for key, v in kw.items()})
    return params, np.asarray(y, dtype), None if u is None else np.asarray(u, dtype)


@functools.cache
def _smoother_and_samples(case, method):
    """The smoother and two posterior samples (fixed key), from one compiled call."""
    params, y, u = _case(case)

    @jax.jit
    def run(params, y, u):
        key = jax.random.key(7)
        return (
            lgssm.lgssm_smoother(params, y, u, method=method),
            lgssm.lgssm_posterior_sample(key, params, y, u, method=method, num_samples=2),
        )

    return jax.device_get(run(params, y, u))


def _assert_close(actual, expected, name, rtol=1e-8, atol=1e-8):
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("case,method", CASE_METHODS, ids=CASE_METHOD_IDS)
def test_smoother_against_dense_joint_gaussian(case, method):
    params, y, u = _case(case)
    ref = dense_posterior(params, y, u)
    smooth, _ = _smoother_and_samples(case, method)
    for name in ("marginal_loglik", "filtered_means", "filtered_covariances", *SMOOTHER_FIELDS):
        _assert_close(getattr(smooth, name), ref[name], name)
    T, n = y.shape[0], params.initial.mean.shape[0]
    assert smooth.smoothed_cross_covariances.shape == (T - 1, n, n)


@pytest.mark.parametrize("case", list(CASES))
def test_filter_against_dense_joint_gaussian(case):
    params, y, u = _case(case)
    ref = dense_posterior(params, y, u)
    filt = jax.jit(lgssm.lgssm_filter)(params, y, u)
    for name in FILTER_FIELDS:
        _assert_close(getattr(filt, name), ref[name], name)
    T, n = y.shape[0], params.initial.mean.shape[0]
    assert filt.predicted_means.shape == (T - 1, n)


@pytest.mark.parametrize("case,method", CASE_METHODS, ids=CASE_METHOD_IDS)
def test_same_key_same_sample_for_every_method(case, method):
    _, expected = _smoother_and_samples(case, scanalg.Sequential())
    _, actual = _smoother_and_samples(case, method)
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-9)
    params, y, _ = _case(case)
    assert actual.shape == (2, y.shape[0], params.initial.mean.shape[0])
    assert not np.allclose(actual[0], actual[1])


def test_missing_rows_are_predict_only():
    """A missing row changes nothing but the prediction: same as dropping its update."""
    params, y, u = _case("tvdiagR-missing-last")
    filt = jax.jit(lgssm.lgssm_filter)(params, y, u)
    # At t = 2 (missing) the filtered moments equal the prediction from t = 1.
    np.testing.assert_allclose(filt.filtered_means[2], filt.predicted_means[1], rtol=1e-12)
    np.testing.assert_allclose(
        filt.filtered_covariances[2], filt.predicted_covariances[1], rtol=1e-12
    )


def test_sampler_moments_match_smoother():
    """Whitened sample mean and covariance of the joint posterior, within ~5
    standard errors for N samples (fixed seed: deterministic)."""
    params, y, u = _case("tv-inputs-missing")
    ref = dense_posterior(params, y, u)
    N = 20000
    samples = jax.jit(
        lambda k: lgssm.lgssm_posterior_sample(k, params, y, u, method="auto", num_samples=N)
    )(jax.random.key(0))
    T, n = y.shape[0], params.initial.mean.shape[0]
    assert samples.shape == (N, T, n)
    resid = np.asarray(samples).reshape(N, -1) - ref["joint_mean"]
    chol = np.linalg.cholesky(ref["joint_covariance"])
    white = np.linalg.solve(chol, resid.T).T
    d = white.shape[1]
    # Means of standard normals over N draws: sd 1/sqrt(N) each.
    assert np.max(np.abs(white.mean(0))) < 5 / np.sqrt(N)
    # Covariance entries: sd sqrt(2/N) on the diagonal, 1/sqrt(N) off it.
    cov = np.cov(white, rowvar=False)
    sd = np.where(np.eye(d, dtype=bool), np.sqrt(2 / N), 1 / np.sqrt(N))
    assert np.max(np.abs(cov - np.eye(d)) / sd) < 5.5
    one = lgssm.lgssm_posterior_sample(jax.random.key(0), params, y, u)
    assert one.shape == (T, n)


# ---------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------


@functools.cache
def _grad(method):
    params, y, u = _case("tv-inputs-missing")

    def loglik(params):
        return lgssm.lgssm_filter(params, y, u, method=method).marginal_loglik

    return jax.device_get(jax.jit(jax.grad(loglik))(params))


def test_grad_matches_finite_differences_of_the_dense_reference():
    params, y, u = _case("tv-inputs-missing")
    grad = _grad(GRAD_METHODS[0])
    rng = np.random.default_rng(0)
    direction = jax.tree.map(lambda x: rng.normal(size=np.shape(x)), params)
    # Keep the covariances symmetric along the direction.
    direction = eqx.tree_at(
        lambda p: (p.initial.cov, p.dynamics.cov, p.emissions.cov),
        direction,
        replace_fn=lambda x: (x + np.swapaxes(x, -1, -2)) / 2,
    )
    leaves = zip(jax.tree.leaves(grad), jax.tree.leaves(direction), strict=True)
    analytic = sum(np.sum(g * d) for g, d in leaves)
    eps = 1e-6

    def ref_ll(sign):
        moved = jax.tree.map(lambda p, d: np.asarray(p) + sign * eps * d, params, direction)
        return dense_posterior(moved, y, u)["marginal_loglik"]

    numeric = (ref_ll(1) - ref_ll(-1)) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


@pytest.mark.parametrize("method", GRAD_METHODS[1:], ids=repr)
def test_grad_equal_across_methods(method):
    expected, actual = _grad(GRAD_METHODS[0]), _grad(method)
    for a, b in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)
