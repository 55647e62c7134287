"""LGSSM inference (Kalman filter, RTS smoother, posterior sampler) against the exact
answer from conditioning the dense joint Gaussian, for every method: partly missing
rows, singular covariances, square shapes."""

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

# Every method the LGSSM functions are run with.
METHODS = tuple(
    {repr(m): m for m in (*all_methods, scanalg.Parallel(algorithm="associative_scan"))}.values()
)

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
# covariances, missing rows at the start, middle and end, partly missing rows (with
# time-varying and with fixed parameters), T = 1, an all-missing T = 2, and
# T == state_dim == emission_dim (every shape square).
CASES = {
    "tv-inputs-missing": (
        0,
        7,
        3,
        2,
        2,
        dict(time_varying=_ALL_TV, missing=(0, 4), partly_missing=((2, 1), (5, 0))),
    ),
    "tvdiagR-missing-last": (
        1,
        6,
        2,
        2,
        0,
        dict(diag_R=True, time_varying=("emissions_cov",), missing=(2, 5)),
    ),
    "fixed-partly-missing": (
        5,
        6,
        2,
        3,
        0,
        dict(diag_R=True, missing=(3,), partly_missing=((0, 2), (1, 0), (1, 2), (4, 1))),
    ),
    "square-T3": (6, 3, 3, 3, 0, dict()),
    "T1-inputs": (3, 1, 2, 2, 1, dict()),
    "T2-all-missing-diagR": (4, 2, 2, 1, 0, dict(diag_R=True, missing=(0, 1))),
}
# The first case runs with every method; the others with a sequential and a parallel one.
CASE_METHODS = [("tv-inputs-missing", m) for m in METHODS] + [
    (c, m) for c in list(CASES)[1:] for m in (scanalg.Sequential(), scanalg.Parallel())
]
CASE_METHOD_IDS = [f"{c}-{m!r}" for c, m in CASE_METHODS]
GRAD_METHODS = core_methods  # a gradient of the whole pipeline per method


def _case(name, dtype=np.float64):
    seed, T, n, k, m, opts = CASES[name]
    kw, y, u = random_model(seed, T, n, k, m, **opts)
    params = lgssm.LGSSMParams(**{key: np.asarray(v, dtype) for key, v in kw.items()})
    return params, np.asarray(y, dtype), None if u is None else np.asarray(u, dtype)


def singular_model(kind, dtype=np.float64, T=8, dt=0.1):
    """A known start (`P0 = 0`) and a singular or tiny transition covariance, for a
    constant-velocity model observing the position: `kind` is "velocity-noise"
    (`Q = diag(0, dt)`) or "tiny" (`Q = 1e-4 I`)."""
    Q = np.diag([0.0, dt]) if kind == "velocity-noise" else 1e-4 * np.eye(2)
    kw = dict(
        initial_mean=np.array([1.0, -0.5]),
        initial_cov=np.zeros((2, 2)),
        dynamics_weights=np.array([[1.0, dt], [0.0, 1.0]]),
        dynamics_cov=Q,
        emissions_weights=np.array([[1.0, 0.0]]),
        emissions_cov=np.array([[0.3]]),
    )
    y = np.random.default_rng(2).normal(size=(T, 1))
    y[3] = np.nan
    params = lgssm.LGSSMParams(**{key: np.asarray(v, dtype) for key, v in kw.items()})
    return params, y.astype(dtype), None


@eqx.filter_jit
def _posterior(params, y, u, method):
    """The smoother and two posterior samples (fixed key), compiled together once per
    structure of the model and method."""
    key = jax.random.key(7)
    return (
        lgssm.lgssm_smoother(params, y, u, method=method),
        lgssm.lgssm_posterior_sample(key, params, y, u, method=method, num_samples=2),
    )


@functools.cache
def _smoother_and_samples(case, method):
    """For a named case, or a tuple of `singular_model`'s arguments."""
    params, y, u = singular_model(*case) if isinstance(case, tuple) else _case(case)
    return jax.device_get(_posterior(params, y, u, method))


def _assert_close(actual, expected, name, rtol=1e-8, atol=1e-8):
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=rtol, atol=atol, err_msg=name)


def _assert_gaussian_samples(samples, mean, cov, z=6.0):
    """Draws `samples` (N, d) from N(mean, cov), `cov` possibly singular: along the
    eigenvectors of `cov` with zero eigenvalue the samples do not move; along the
    others, whitened, the sample mean and covariance are those of standard normals
    within `z` standard errors (one false alarm in ~1e6 with z = 6, fixed seed)."""
    N = samples.shape[0]
    w, V = np.linalg.eigh(cov)
    positive = w > 1e-9 * w.max()
    resid = (samples - mean) @ V
    assert np.max(np.abs(resid[:, ~positive]), initial=0) < 1e-6 * np.sqrt(w.max())
    white = resid[:, positive] / np.sqrt(w[positive])
    d = white.shape[1]
    # Means of standard normals over N draws: sd 1/sqrt(N) each.
    assert np.max(np.abs(white.mean(0))) < z / np.sqrt(N)
    # Covariance entries: sd sqrt(2/N) on the diagonal, 1/sqrt(N) off it.
    sample_cov = np.cov(white, rowvar=False).reshape(d, d)
    sd = np.where(np.eye(d, dtype=bool), np.sqrt(2 / N), 1 / np.sqrt(N))
    assert np.max(np.abs(sample_cov - np.eye(d)) / sd) < z


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
    filt = lgssm.lgssm_filter(params, y, u)
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
    filt = lgssm.lgssm_filter(params, y, u)
    # At t = 2 (missing) the filtered moments equal the prediction from t = 1.
    np.testing.assert_allclose(filt.filtered_means[2], filt.predicted_means[1], rtol=1e-12)
    np.testing.assert_allclose(
        filt.filtered_covariances[2], filt.predicted_covariances[1], rtol=1e-12
    )


def test_partly_missing_row_conditions_on_its_observed_components():
    """A partly missing row is the row with those components dropped from the model:
    the same as emitting only the observed ones, at that step alone."""
    params, y, _ = _case("fixed-partly-missing")
    t, keep = 4, np.array([0, 2])  # y[4, 1] is missing
    assert np.isnan(y[t, 1]) and not np.isnan(y[t, keep]).any()
    filt = lgssm.lgssm_filter(params, y)
    # One Kalman update with the observed components only, from the prediction.
    m, P = filt.predicted_means[t - 1], filt.predicted_covariances[t - 1]
    H = np.asarray(params.emissions.weights)[keep]
    R = np.diag(np.asarray(params.emissions.cov)[keep])
    e = y[t, keep] - np.asarray(params.emissions.bias)[keep] - H @ m
    K = P @ H.T @ np.linalg.inv(H @ P @ H.T + R)
    np.testing.assert_allclose(filt.filtered_means[t], m + K @ e, rtol=1e-10)
    np.testing.assert_allclose(filt.filtered_covariances[t], P - K @ H @ P, rtol=1e-10)


def test_sampler_moments_match_smoother():
    """The joint posterior of a model with partly missing rows, from 20000 samples."""
    params, y, u = _case("tv-inputs-missing")
    ref = dense_posterior(params, y, u)
    N = 20000
    samples = lgssm.lgssm_posterior_sample(
        jax.random.key(0), params, y, u, method="auto", num_samples=N
    )
    T, n = y.shape[0], params.initial.mean.shape[0]
    assert samples.shape == (N, T, n)
    flat = np.asarray(samples).reshape(N, -1)
    _assert_gaussian_samples(flat, ref["joint_mean"], ref["joint_covariance"])
    one = lgssm.lgssm_posterior_sample(jax.random.key(0), params, y, u)
    assert one.shape == (T, n)


# ---------------------------------------------------------------------------
# Singular covariances
# ---------------------------------------------------------------------------

SINGULAR = ("velocity-noise", "tiny")


@pytest.mark.parametrize("method", (scanalg.Sequential(), scanalg.Parallel()), ids=repr)
@pytest.mark.parametrize("kind", SINGULAR)
def test_singular_covariances_against_dense_joint_gaussian(kind, method):
    """A known start (P0 = 0) with a singular Q or a tiny one: finite, and the dense
    answer; the samples finite and equal for every method."""
    params, y, _ = singular_model(kind)
    ref = dense_posterior(params, y)
    smooth, samples = _smoother_and_samples((kind,), method)
    for name in ("marginal_loglik", "filtered_means", "filtered_covariances", *SMOOTHER_FIELDS):
        _assert_close(getattr(smooth, name), ref[name], name, rtol=1e-7, atol=1e-9)
    assert np.all(np.isfinite(samples))
    np.testing.assert_allclose(samples[:, 0], np.broadcast_to(params.initial.mean, (2, 2)))
    _, expected = _smoother_and_samples((kind,), scanalg.Sequential())
    np.testing.assert_allclose(samples, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", SINGULAR)
def test_singular_covariances_float32(kind):
    params, y, _ = singular_model(kind)
    ref = dense_posterior(params, y)
    smooth, samples = _smoother_and_samples((kind, np.float32), scanalg.Sequential())
    assert smooth.smoothed_means.dtype == np.float32 and np.all(np.isfinite(samples))
    for name in ("marginal_loglik", "filtered_means", "filtered_covariances", *SMOOTHER_FIELDS):
        _assert_close(getattr(smooth, name), ref[name], name, rtol=1e-4, atol=1e-5)


def test_singular_sampler_moments():
    """Samples of a posterior whose covariance is singular (z_0 is known): they keep to
    its support, and have its mean and covariance elsewhere."""
    params, y, _ = singular_model("velocity-noise")
    ref = dense_posterior(params, y)
    N = 20000
    samples = lgssm.lgssm_posterior_sample(jax.random.key(1), params, y, num_samples=N)
    flat = np.asarray(samples).reshape(N, -1)
    _assert_gaussian_samples(flat, ref["joint_mean"], ref["joint_covariance"])


# ---------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------


@functools.cache
def _grad(method):
    params, y, u = _case("tv-inputs-missing")

    @eqx.filter_jit
    def grad(params):
        loglik = lambda p: lgssm.lgssm_filter(p, y, u, method=method).marginal_loglik  # noqa: E731
        return jax.grad(loglik)(params)

    return jax.device_get(grad(params))


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
