"""LGSSM numerics and input checking: against dynamax, float32 on long sequences,
bad shapes and values."""

import equinox as eqx
import jax
import jax.numpy as jnp
import lgssm_long
import numpy as np
import pytest
from lgssm_reference import random_model
from test_lgssm import SMOOTHER_FIELDS, _assert_close, _case

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
    got = jax.jit(lambda p, y, u: lgssm.lgssm_smoother(p, y, u, method=method))(params, y, u)
    fields = ("marginal_loglik", "filtered_means", "filtered_covariances", *SMOOTHER_FIELDS)
    for name in fields:
        _assert_close(getattr(got, name), getattr(expected, name), name, 1e-7, 1e-7)


# ---------------------------------------------------------------------------
# Numerics: float32, long sequences
# ---------------------------------------------------------------------------


# One method per algorithm: each compiles the smoother at T = 1e5.
@pytest.mark.parametrize("method", ["sequential", "parallel", "blocked"])
def test_float32_long_sequence(method):
    """T = 1e5, state_dim 4, 5% missing rows, states drifting far from the origin:
    no NaN, covariances symmetric PSD, means within 1e-2 of float64 (see
    `lgssm_long.py`)."""
    lgssm_long.check(method)


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
    with pytest.raises(ValueError, match=r"`params.emissions.cov` must have shape \(2, 2\)"):
        lgssm.lgssm_filter(bad, y, u)
    bad = _replace(params, lambda p: p.initial.cov, np.eye(2))
    with pytest.raises(ValueError, match=r"`params.initial.cov` must have shape \(3, 3\)"):
        lgssm.lgssm_smoother(bad, y, u)
    bad = _replace(params, lambda p: p.initial.mean, np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"`params.initial.mean` must have shape \(state_dim,\)"):
        lgssm.lgssm_posterior_sample(jax.random.key(0), bad, y, u)
    with pytest.raises(ValueError, match="at least one time step"):
        lgssm.lgssm_filter(params, y[:0], u[:0])
    with pytest.raises(ValueError, match="num_samples"):
        lgssm.lgssm_posterior_sample(jax.random.key(0), params, y, u, num_samples=0)
    with pytest.raises(ValueError, match="Unknown scan method"):
        lgssm.lgssm_filter(params, y, u, method="fast")


def test_asymmetric_covariance_is_an_error():
    params, y, _ = _case("tvdiagR-missing-last")
    cov = np.array(params.dynamics.cov)
    cov[0, 1] += 0.1
    bad = _replace(params, lambda p: p.dynamics.cov, cov)
    with pytest.raises(ValueError, match=r"`params.dynamics.cov` must be symmetric"):
        lgssm.lgssm_filter(bad, y)
    # Under jit the check runs on the values at run time.
    with pytest.raises(Exception, match=r"`params.dynamics.cov` must be symmetric"):
        jax.block_until_ready(jax.jit(lgssm.lgssm_filter)(bad, y))
    # Rounding-level asymmetry is fine, at trace time and at run time.
    cov = np.array(params.dynamics.cov)
    cov[0, 1] += 1e-15
    ok = _replace(params, lambda p: p.dynamics.cov, cov)
    lgssm_impl._model(ok, y, None)
    jax.block_until_ready(jax.jit(lgssm.lgssm_filter)(ok, y))


def test_partly_missing_row_is_an_error():
    params, y, _ = _case("tvdiagR-missing-last")
    y = y.copy()
    y[1, 0] = np.nan
    with pytest.raises(ValueError, match="all NaN"):
        lgssm.lgssm_filter(params, y)
    with pytest.raises(Exception, match="all NaN"):
        jax.block_until_ready(jax.jit(lgssm.lgssm_filter)(params, y))
