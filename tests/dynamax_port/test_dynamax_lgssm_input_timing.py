# ruff: noqa: E501, E402, F401, F811, I001, UP039
# fmt: off
"""Tests for LGSSM input and parameter indexing and covariance lengths.

scanalg: dynamax 1.0.3's `linear_gaussian_ssm/input_timing_test.py` (MIT licence, the
dynamax authors), run against scanalg for every scan method. Every change is marked
`# scanalg:`; every assertion, reference and tolerance is dynamax's. The functions under
test (`smoother`, `sampler`, `filter_fn`), parametrised in dynamax over its sequential,
parallel and information-form implementations, are fixtures here: scanalg's
`lgssm_smoother`, `lgssm_posterior_sample` and `lgssm_filter` for every method. The
information-form case is not ported (scanalg has no information filter; its branches
below are never taken). dynamax's code runs with JAX's default promotion rules,
scanalg's under the suite's (see `conftest.py`).
"""

import numpy as np
import pytest
import jax.numpy as jnp
from jax import jit, random as jr, vmap

pytest.importorskip("dynamax")  # scanalg: skipped without the `oracle` extra
from dynamax_port_helpers import METHODS, IDS, as_dict, lgssm_api

from dynamax.linear_gaussian_ssm.inference import lgssm_filter, lgssm_posterior_sample, lgssm_smoother
from dynamax.linear_gaussian_ssm import parallel_lgssm_filter, parallel_lgssm_posterior_sample, parallel_lgssm_smoother
from dynamax.linear_gaussian_ssm.info_inference import ParamsLGSSMInfo, info_to_moment_form, lgssm_info_filter, lgssm_info_smoother
from dynamax.linear_gaussian_ssm.inference_test_utils import make_timing_case, assert_sample_moments


def _to_info_form(params):
    """Express the same time-varying model using precisions instead of covariances."""
    return ParamsLGSSMInfo(
        initial_mean=params.initial.mean,
        initial_precision=jnp.linalg.inv(params.initial.cov),
        dynamics_weights=params.dynamics.weights,
        dynamics_precision=jnp.linalg.inv(params.dynamics.cov),
        dynamics_input_weights=params.dynamics.input_weights,
        dynamics_bias=params.dynamics.bias,
        emission_weights=params.emissions.weights,
        emission_precision=jnp.linalg.inv(params.emissions.cov),
        emission_input_weights=params.emissions.input_weights,
        emission_bias=params.emissions.bias,
    )


# scanalg: the functions under test, for every method (dynamax: sequential, parallel and
# information form).
@pytest.fixture(params=METHODS, ids=IDS, name="smoother")
def scanalg_smoother(request):
    return lgssm_api(request.param).lgssm_smoother


@pytest.fixture(params=METHODS, ids=IDS, name="sampler")
def scanalg_sampler(request):
    return lgssm_api(request.param).lgssm_posterior_sample


@pytest.fixture(params=METHODS, ids=IDS, name="filter_fn")
def scanalg_filter(request):
    return lgssm_api(request.param).lgssm_filter


@pytest.mark.parametrize("num_timesteps", [1, 3])
def test_inference_input_indexing(num_timesteps, smoother):  # scanalg: `smoother` a fixture
    """Check input and parameter indexing in LGSSM filtering and smoothing against exact results."""
    params, emissions, inputs, expected = make_timing_case(num_timesteps)
    if smoother == lgssm_info_smoother:
        params = _to_info_form(params)
    # scanalg: `smoother` is jitted already (`lgssm_api`, with the port's compiler options,
    # which an outer `jit` would override), and `as_dict` reads the fields of a NamedTuple
    # or an eqx.Module result.
    actual = as_dict(smoother(params, emissions, inputs))
    if smoother == lgssm_info_smoother:
        for field in ("filtered", "smoothed"):
            actual[f"{field}_means"], actual[f"{field}_covariances"] = info_to_moment_form(
                actual.pop(f"{field}_etas"), actual.pop(f"{field}_precisions"))
    for field, value in actual.items():
        if value is not None:
            np.testing.assert_allclose(value, expected[field], atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("num_timesteps", [1, 3])
def test_posterior_sample_input_indexing(num_timesteps, sampler):  # scanalg: `sampler` a fixture
    """Check input and parameter indexing in LGSSM posterior sampling
    against the exact mean and covariance.
    """
    params, emissions, inputs, expected = make_timing_case(num_timesteps)
    samples = vmap(lambda key: sampler(key, params, emissions, inputs))(  # scanalg: jitted already
        jr.split(jr.PRNGKey(13), 12000)
    )
    assert_sample_moments(samples, expected["smoothed_means"], expected["joint_covariance"])


def test_rejects_short_dynamics_covariance(filter_fn):  # scanalg: `filter_fn` a fixture
    """Check that LGSSM filters reject incorrect dynamics covariance lengths."""
    params, emissions, inputs, _ = make_timing_case()
    params = params._replace(dynamics=params.dynamics._replace(cov=params.dynamics.cov[:-1]))
    if filter_fn == lgssm_info_filter:
        params = _to_info_form(params)
    # scanalg: a ValueError naming the argument and the shapes it may have (scanalg's
    # rule for bad input), where dynamax fails an `assert`.
    with pytest.raises(ValueError, match="dynamics.cov"):
        filter_fn(params, emissions, inputs)
