"""For `test_lgssm_numerics.py::test_float32_long_sequence`: the LGSSM smoother in
float32 at T = 1e5, against a float64 run (computed once). A hang is a test failure
by pytest-timeout.
"""

import functools

import jax
import numpy as np

from scanalg import lgssm


def _tracking_model(dtype, dt=0.1, q=1e-2, r=0.5):
    F = np.eye(4)
    F[0, 2] = F[1, 3] = dt
    Q1 = q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
    Q = np.zeros((4, 4))
    Q[np.ix_([0, 2], [0, 2])] = Q1
    Q[np.ix_([1, 3], [1, 3])] = Q1
    H = np.eye(2, 4)
    kw = dict(
        initial_mean=np.zeros(4),
        initial_cov=np.eye(4),
        dynamics_weights=F,
        dynamics_cov=Q,
        emissions_weights=H,
        emissions_cov=r * np.eye(2),
    )
    return lgssm.LGSSMParams(**{k: np.asarray(v, dtype) for k, v in kw.items()})


def _tracking_data(T, seed=0):
    rng = np.random.default_rng(seed)
    vel = np.cumsum(rng.normal(scale=0.03, size=(T, 2)), axis=0)
    pos = np.cumsum(0.1 * vel, axis=0)
    y = pos + rng.normal(scale=0.7, size=(T, 2))
    y[rng.random(T) < 0.05] = np.nan
    return y


def _assert_psd(covs, name):
    covs = np.asarray(covs, np.float64)
    assert np.all(np.isfinite(covs)), name
    np.testing.assert_array_equal(covs, np.swapaxes(covs, -1, -2), err_msg=name)
    eig = np.linalg.eigvalsh(covs)
    assert np.all(eig[:, 0] >= -1e-5 * eig[:, -1]), (name, eig[:, 0].min())


@functools.cache
def long_sequence():
    """The data and the float64 sequential smoother on it."""
    y = _tracking_data(100_000)
    ref = jax.jit(lambda p, y: lgssm.lgssm_smoother(p, y, method="sequential"))(
        _tracking_model(np.float64), y
    )
    return y, jax.device_get(ref)


def check(method):
    """Assert that `method`'s float32 smoother is close to the float64 one."""
    y, ref = long_sequence()
    run = jax.jit(lambda p, y: lgssm.lgssm_smoother(p, y, method=method))
    got = jax.device_get(run(_tracking_model(np.float32), y.astype(np.float32)))
    assert got.smoothed_means.dtype == np.float32
    for name in ("filtered_covariances", "smoothed_covariances"):
        _assert_psd(getattr(got, name), name)
    for name in ("filtered_means", "smoothed_means"):
        a, b = np.asarray(getattr(got, name), np.float64), np.asarray(getattr(ref, name))
        assert np.all(np.isfinite(a)), name
        err = np.max(np.abs(a - b)) / np.max(np.abs(b))
        assert err <= 1e-2, f"{name}: relative error {err:.2e}"
    assert np.isfinite(got.marginal_loglik)
    np.testing.assert_allclose(got.marginal_loglik, ref.marginal_loglik, rtol=1e-3)
