"""LGSSM numerics and input checking: against dynamax, float32 far from the origin and
on long sequences, compiled once, strict JAX settings, bad shapes and values."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from lgssm_reference import random_model
from test_lgssm import METHODS, SMOOTHER_FIELDS, _assert_close, _case

import scanalg
from scanalg import lgssm
from scanalg.models.lgssm import _inference as lgssm_impl

# ---------------------------------------------------------------------------
# Against dynamax
# ---------------------------------------------------------------------------


# Against the oracle: a loop and a parallel scan (the methods agree with each other
# for every method in test_lgssm.py).
DYNAMAX_CASES = [(1, "sequential"), (1000, "sequential"), (1000, "parallel")]


@pytest.mark.parametrize("T,method", DYNAMAX_CASES)
def test_against_dynamax(T, method):
    pytest.importorskip("dynamax")
    from dynamax.linear_gaussian_ssm import inference as dyn
    from dynamax.linear_gaussian_ssm.inference import make_lgssm_params

    tv = ("dynamics_weights", "emissions_cov", "dynamics_bias", "emissions_input_weights")
    kw, y, u = random_model(10 + T, T, 3, 2, 1, time_varying=tv)
    dyn_params = make_lgssm_params(**{k: jnp.asarray(v) for k, v in kw.items()})
    expected = jax.jit(dyn.lgssm_smoother)(dyn_params, jnp.asarray(y), jnp.asarray(u))
    # A dynamax ParamsLGSSM works as well as our LGSSMParams (duck typing).
    params = dyn_params if T == 1 else lgssm.LGSSMParams(**kw)
    got = lgssm.lgssm_smoother(params, y, u, method=method)
    fields = ("marginal_loglik", "filtered_means", "filtered_covariances", *SMOOTHER_FIELDS)
    for name in fields:
        _assert_close(getattr(got, name), getattr(expected, name), name, 1e-7, 1e-7)


# ---------------------------------------------------------------------------
# float32 far from the origin
# ---------------------------------------------------------------------------


def _far_from_origin(T=10_000, dt=0.1):
    """Two float32 models whose states are of the order of 1e6, stacked (the same
    shapes, so each method compiles once): a random walk observed with unit noise
    (a second, constant state coordinate), and a constant-velocity model with a large
    initial mean observed through its position."""
    rng = np.random.default_rng(0)
    walk = 1e6 + np.cumsum(rng.normal(size=T))
    F_cv = np.array([[1.0, dt], [0.0, 1.0]])
    Q_cv = 0.01 * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
    z = np.zeros((T, 2))
    z[0] = [1e6, 5.0]
    for t in range(1, T):
        z[t] = F_cv @ z[t - 1] + np.linalg.cholesky(Q_cv) @ rng.normal(size=2)
    kw = dict(
        initial_mean=np.array([[1e6, 0.0], [1e6, 5.0]]),
        initial_cov=np.stack([np.eye(2), np.eye(2)]),
        dynamics_weights=np.stack([np.eye(2), F_cv]),
        dynamics_cov=np.stack([np.diag([1.0, 0.0]), Q_cv]),
        emissions_weights=np.array([[[1.0, 0.0]], [[1.0, 0.0]]]),
        emissions_cov=np.ones((2, 1, 1)),
    )
    y = np.stack([walk, z[:, 0]])[:, :, None] + rng.normal(size=(2, T, 1))
    return {k: v.astype(np.float32) for k, v in kw.items()}, y.astype(np.float32)


@functools.cache
def _far_from_origin_errors():
    """Relative errors of float32 log-likelihoods against float64 on the same float32
    data: dynamax's serial filter, then each method."""
    kw, y = _far_from_origin()

    def run(kw, y, method):
        def loglik(kw, y):
            return lgssm.lgssm_filter(lgssm.LGSSMParams(**kw), y, method=method).marginal_loglik

        return np.asarray(jax.jit(jax.vmap(loglik))(kw, y), np.float64)

    kw64 = {k: v.astype(np.float64) for k, v in kw.items()}
    exact = run(kw64, y.astype(np.float64), scanalg.Sequential())
    errors = {}
    try:
        from dynamax.linear_gaussian_ssm import lgssm_filter as dynamax_filter
        from dynamax.linear_gaussian_ssm.inference import make_lgssm_params
    except ImportError:
        pass
    else:
        with jax.enable_x64(False):  # dynamax mixes in default-float zeros
            dyn = jax.jit(jax.vmap(lambda kw, y: dynamax_filter(make_lgssm_params(**kw), y)))
            got = np.asarray(dyn(kw, y).marginal_loglik, np.float64)
        errors["dynamax"] = np.abs(got - exact) / np.abs(exact)
    for method in METHODS:
        errors[repr(method)] = np.abs(run(kw, y, method) - exact) / np.abs(exact)
    return errors


@pytest.mark.parametrize("method", METHODS, ids=repr)
def test_float32_loglik_far_from_the_origin(method):
    """At least as accurate as dynamax's float32 serial filter (which the centring
    makes possible: uncentred, the scan's means lose their last digits at 1e6)."""
    errors = _far_from_origin_errors()
    if "dynamax" not in errors:
        pytest.skip("dynamax is not installed: its error is the bound")
    got, bound = errors[repr(method)], errors["dynamax"]
    assert np.all(got <= bound), (got, bound)


@pytest.mark.parametrize("method", ["sequential", "parallel", "blocked"])
@pytest.mark.timeout(600)
def test_float32_long_sequence(method):
    """T = 1e5, state_dim 4, a known start (P0 = 0) and noise on the velocities only
    (Q singular), 5% missing rows and 1% partly missing, states drifting far from the
    origin: no NaN, covariances symmetric PSD, means within 1e-2 of float64. (In
    process: no LAPACK call inside, see `test_no_lapack_for_small_matrices`.)"""
    y, ref = _long_sequence()
    got = _smooth(_tracking_model(np.float32), y.astype(np.float32), method)
    assert got.smoothed_means.dtype == np.float32
    for name in ("filtered_covariances", "smoothed_covariances"):
        covs = np.asarray(getattr(got, name), np.float64)
        assert np.all(np.isfinite(covs)), name
        np.testing.assert_array_equal(covs, np.swapaxes(covs, -1, -2), err_msg=name)
        eig = np.linalg.eigvalsh(covs)
        assert np.all(eig[:, 0] >= -1e-5 * eig[:, -1]), (name, eig[:, 0].min())
    for name in ("filtered_means", "smoothed_means"):
        a, b = np.asarray(getattr(got, name), np.float64), np.asarray(getattr(ref, name))
        assert np.all(np.isfinite(a)), name
        err = np.max(np.abs(a - b)) / np.max(np.abs(b))
        assert err <= 1e-2, f"{name}: relative error {err:.2e}"
    np.testing.assert_allclose(got.marginal_loglik, ref.marginal_loglik, rtol=1e-3)


def _tracking_model(dtype, dt=0.1, q=1e-2, r=0.5):
    F = np.eye(4)
    F[0, 2] = F[1, 3] = dt
    kw = dict(
        initial_mean=np.array([1e4, -1e4, 3.0, 1.0]),
        initial_cov=np.zeros((4, 4)),
        dynamics_weights=F,
        dynamics_cov=np.diag([0.0, 0.0, q * dt, q * dt]),
        emissions_weights=np.eye(2, 4),
        emissions_cov=r * np.eye(2),
    )
    return lgssm.LGSSMParams(**{k: np.asarray(v, dtype) for k, v in kw.items()})


def _smooth(params, y, method):
    return jax.device_get(lgssm.lgssm_smoother(params, y, method=method))


@functools.cache
def _long_sequence(T=100_000):
    rng = np.random.default_rng(0)
    vel = np.array([3.0, 1.0]) + np.cumsum(rng.normal(scale=0.03, size=(T, 2)), axis=0)
    pos = np.array([1e4, -1e4]) + np.cumsum(0.1 * vel, axis=0)
    y = pos + rng.normal(scale=0.7, size=(T, 2))
    y[rng.random(T) < 0.05] = np.nan
    y[rng.random(T) < 0.01, 1] = np.nan
    return y, _smooth(_tracking_model(np.float64), y, "sequential")


def test_no_lapack_for_small_matrices():
    """Up to 8x8 nothing calls LAPACK: jaxlib's batched CPU LAPACK kernels can
    deadlock on a small thread pool (seen with two running at once on 2 cores)."""
    params, y, u = _case("tv-inputs-missing")
    key = jax.random.key(0)
    for fn in (
        lambda p, y, u: lgssm.lgssm_smoother(p, y, u),
        lambda p, y, u: lgssm.lgssm_posterior_sample(key, p, y, u, method="parallel"),
    ):
        text = jax.jit(fn).lower(params, y, u).as_text()
        assert "lapack" not in text.lower()


# ---------------------------------------------------------------------------
# Compiled once; strict JAX settings
# ---------------------------------------------------------------------------


def test_second_call_does_not_compile_again(monkeypatch):
    """Without a user `jit`, each function is traced once per shape and static
    argument: further calls with new values reuse the compiled code."""
    params, y, u = _case("T1-inputs")
    traces = []
    model = lgssm_impl._model
    monkeypatch.setattr(lgssm_impl, "_model", lambda *a: traces.append(1) or model(*a))
    calls = (
        lambda p, y: lgssm.lgssm_filter(p, y, u),
        lambda p, y: lgssm.lgssm_smoother(p, y, u),
        lambda p, y: lgssm.lgssm_posterior_sample(jax.random.key(1), p, y, u),
    )
    for call in calls:
        jax.block_until_ready(call(params, y))  # compiles (unless cached)
        traces.clear()
        for scale in (2.0, 3.0):
            moved = jax.tree.map(lambda x: x * scale, params)
            jax.block_until_ready(call(moved, y + scale))
        assert traces == []


def test_strict_rank_and_dtype_promotion():
    """Every function, every method, traced with `jax_numpy_rank_promotion="raise"`
    and `jax_numpy_dtype_promotion="strict"`: no implicit broadcast or promotion."""
    params, y, u = _case("tv-inputs-missing")
    key = jax.random.key(0)
    with jax.numpy_rank_promotion("raise"), jax.numpy_dtype_promotion("strict"):
        for method in METHODS:
            jax.eval_shape(lambda p, y, u: lgssm.lgssm_filter(p, y, u, method=method), params, y, u)
            jax.eval_shape(
                lambda p, y, u: lgssm.lgssm_smoother(p, y, u, method=method), params, y, u
            )
            jax.eval_shape(
                lambda p, y, u: lgssm.lgssm_posterior_sample(key, p, y, u, method=method),
                params,
                y,
                u,
            )


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


def _replace(params, where, value):
    return eqx.tree_at(where, params, value, is_leaf=lambda x: x is None)


def test_bad_shapes():
    params, y, u = _case("tv-inputs-missing")
    T = y.shape[0]
    with pytest.raises(ValueError, match=r"`emissions` must have shape \(num_timesteps"):
        lgssm.lgssm_filter(params, y[:, 0], u)
    # Time-varying parameters have T entries; fewer emissions do not fit them.
    with pytest.raises(ValueError, match=r"params.dynamics.weights` must have shape \(3, 3\) or"):
        lgssm.lgssm_filter(params, y[:-1], u[:-1])
    with pytest.raises(ValueError, match=rf"`inputs` must have shape \({T}, input_dim\)"):
        lgssm.lgssm_filter(params, y, u[:-1])
    with pytest.raises(ValueError, match=r"dynamics.input_weights` must have shape \(3, 1\)"):
        lgssm.lgssm_filter(params, y, u[:, :1])
    bad = _replace(params, lambda p: p.emissions.weights, np.ones((T, 3, 3)))
    with pytest.raises(ValueError, match=r"`params.emissions.weights` must have shape \(2, 3\)"):
        lgssm.lgssm_filter(bad, y, u)
    bad = _replace(params, lambda p: p.emissions.cov, np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"`params.emissions.cov` must have shape \(2,\)"):
        lgssm.lgssm_filter(bad, y, u)
    bad = _replace(params, lambda p: p.initial.cov, np.eye(2))
    with pytest.raises(ValueError, match=r"`params.initial.cov` must have shape \(3, 3\)"):
        lgssm.lgssm_smoother(bad, y, u)
    bad = _replace(params, lambda p: p.initial.mean, np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"`params.initial.mean` must have shape \(state_dim,\)"):
        lgssm.lgssm_posterior_sample(jax.random.key(0), bad, y, u)
    with pytest.raises(ValueError, match="at least one time step"):
        lgssm.lgssm_filter(params, y[:0], u[:0])
    for num_samples, error in ((0, ValueError), (True, TypeError), (2.0, TypeError)):
        with pytest.raises(error, match="`num_samples` must be an int >= 1"):
            lgssm.lgssm_posterior_sample(jax.random.key(0), params, y, u, num_samples=num_samples)
    with pytest.raises(ValueError, match="Unknown scan method"):
        lgssm.lgssm_filter(params, y, u, method="fast")


def test_shapes_are_read_by_rank():
    """With T == emission_dim, a (k, k) emission covariance is fixed and full (checked
    against the dense reference with T == k == state_dim in `test_lgssm.py`); a
    time-varying diagonal one is refused in the form (T, k), which would be ambiguous,
    with the unambiguous form named."""
    params, y, _ = _case("tvdiagR-missing-last")
    T, k = y.shape
    diagonals = np.ones((T, k))
    bad = _replace(params, lambda p: p.emissions.cov, diagonals)
    with pytest.raises(ValueError, match=r"jax.vmap\(jnp.diag\)"):
        lgssm.lgssm_filter(bad, y)
    ok = _replace(params, lambda p: p.emissions.cov, jax.vmap(jnp.diag)(diagonals))
    assert np.isfinite(lgssm.lgssm_filter(ok, y).marginal_loglik)


def _base_model():
    """A small fixed model (state 2, emission 1, T = 6) whose values the bad-value
    cases change (the same shapes: compiled once for all of them)."""
    kw = dict(
        initial_mean=np.zeros(2),
        initial_cov=np.eye(2),
        dynamics_weights=np.array([[1.0, 0.1], [0.0, 1.0]]),
        dynamics_cov=0.1 * np.eye(2),
        emissions_weights=np.array([[1.0, 0.0]]),
        emissions_cov=np.array([[0.5]]),
    )
    y = np.random.default_rng(0).normal(size=(6, 1))
    y[2] = np.nan  # missing, not bad
    return kw, y


_INDEFINITE = np.array([[1.0, 2.0], [2.0, 1.0]])
# name: (changes to the model, changes to the emissions, the parameter, what is wrong)
BAD_VALUES = {
    "indefinite Q": (dict(dynamics_cov=_INDEFINITE), None, "dynamics.cov", "semi-definite"),
    "negative-definite Q": (dict(dynamics_cov=-np.eye(2)), None, "dynamics.cov", "semi-def"),
    "indefinite P0": (dict(initial_cov=_INDEFINITE), None, "initial.cov", "semi-definite"),
    "negative R": (dict(emissions_cov=np.array([[-0.5]])), None, "emissions.cov", "semi-def"),
    "negative diagonal R": (dict(emissions_cov=np.array([-0.5])), None, "emissions.cov", "nonneg"),
    "R = 0, singular H": (
        dict(emissions_cov=np.zeros((1, 1)), emissions_weights=np.zeros((1, 2))),
        None,
        "emissions.cov",
        "singular",
    ),
    "NaN in F": (
        dict(dynamics_weights=np.array([[np.nan, 0], [0, 1]])),
        None,
        "dynamics.weights",
        "NaN",
    ),
    "NaN in the initial mean": (
        dict(initial_mean=np.array([0, np.nan])),
        None,
        "initial.mean",
        "NaN",
    ),
    "inf in H": (dict(emissions_weights=np.array([[np.inf, 0]])), None, "emissions.weights", "inf"),
    "asymmetric Q": (
        dict(dynamics_cov=np.array([[1, 0.1], [0, 1]])),
        None,
        "dynamics.cov",
        "symmetric",
    ),
    "+inf emission": (dict(), (4, np.inf), "emissions", "inf"),
    "-inf emission": (dict(), (0, -np.inf), "emissions", "inf"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_bad_values_are_errors_naming_the_parameter(case):
    """Each bad value is an `equinox.error_if` error naming the parameter and the
    problem, with and without a user `jit` (never a silent NaN)."""
    changes, emission, name, problem = BAD_VALUES[case]
    kw, y = _base_model()
    kw.update(changes)
    if emission is not None:
        y[emission[0]] = emission[1]
    params = lgssm.LGSSMParams(**kw)
    match = rf"`(params\.)?{name}`.*{problem}"
    with pytest.raises(RuntimeError, match=match):
        jax.block_until_ready(lgssm.lgssm_filter(params, y))
    with pytest.raises(RuntimeError, match=match):
        jax.block_until_ready(jax.jit(lgssm.lgssm_smoother)(params, y))


def test_bad_values_in_every_function():
    kw, y = _base_model()
    params = lgssm.LGSSMParams(**{**kw, "dynamics_cov": -np.eye(2)})
    match = r"`params\.dynamics\.cov` must be positive semi-definite"
    with pytest.raises(RuntimeError, match=match):
        jax.block_until_ready(lgssm.lgssm_smoother(params, y))
    with pytest.raises(RuntimeError, match=match):
        jax.block_until_ready(lgssm.lgssm_posterior_sample(jax.random.key(0), params, y))


def test_rounding_level_asymmetry_and_singular_covariances_are_fine():
    kw, y = _base_model()
    Q = 0.1 * np.eye(2)
    Q[0, 1] += 1e-15
    params = lgssm.LGSSMParams(**{**kw, "dynamics_cov": Q, "initial_cov": np.zeros((2, 2))})
    assert np.isfinite(jax.jit(lgssm.lgssm_smoother)(params, y).marginal_loglik)
    assert np.isfinite(lgssm.lgssm_filter(params, y).marginal_loglik)
