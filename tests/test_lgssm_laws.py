"""The laws of the LGSSM monoids (`KalmanFilter`, `RTSSmoother`), with valid elements
built operationally: filtering elements from random model steps and products of
them, smoothing elements from contractions and PSD covariances."""

import functools

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scanalg
from scanalg import strategies as S
from scanalg.laws import check_laws
from scanalg.models.lgssm import _inference as lgssm_impl

N, K = 2, 1  # state and emission dimensions
METHODS = (scanalg.Sequential(), scanalg.Parallel())  # Blocked: in test_lgssm.py


def _bounded(shape, bound=1.0):
    return S.arrays(shape, np.float64, min_value=-bound, max_value=bound)


@functools.cache
def _jitted():
    return jax.jit(scanalg.lgssm.kalman_filter_elements), jax.jit(
        scanalg.lgssm.KalmanFilter().combine
    )


def _filter_step(F, c, Q_root, H, R_root, y, observed):
    build, _ = _jitted()
    Q = Q_root @ Q_root.T + 0.1 * np.eye(N)
    R = R_root @ R_root.T + 0.2 * np.eye(K)
    return build(F, c, Q, H, R, y, observed)


def _product(elements):
    _, combine = _jitted()
    return jax.device_get(functools.reduce(combine, elements))


_steps = st.builds(
    _filter_step,
    _bounded((N, N)),
    _bounded(N),
    _bounded((N, N)),
    _bounded((K, N)),
    _bounded((K, K)),
    _bounded(K, 3.0),
    st.booleans(),
)
filter_elements = st.lists(_steps, min_size=1, max_size=3).map(_product)


def _psd(root):
    return jnp.asarray(root @ root.T)


filter_states = st.builds(
    lambda m, root, ll: scanalg.lgssm.FilterState(jnp.asarray(m), _psd(root), jnp.asarray(ll)),
    _bounded(N, 3.0),
    _bounded((N, N)),
    _bounded((), 5.0),
)
smoother_elements = st.builds(
    lambda E, g, root: scanalg.lgssm.SmootherElement(jnp.asarray(E), jnp.asarray(g), _psd(root)),
    S.matmul_elements(N),
    _bounded(N),
    _bounded((N, N)),
)
smoother_states = st.builds(
    lambda m, root: scanalg.lgssm.SmootherState(jnp.asarray(m), _psd(root)),
    _bounded(N, 3.0),
    _bounded((N, N)),
)


@pytest.mark.parametrize(
    "monoid, elements, states",
    [
        (scanalg.lgssm.KalmanFilter(), filter_elements, filter_states),
        (scanalg.lgssm.RTSSmoother(), smoother_elements, smoother_states),
    ],
    ids=["KalmanFilter", "RTSSmoother"],
)
def test_gaussian_monoid_laws(monoid, elements, states):
    laws = check_laws(
        monoid, elements, states=states, methods=METHODS, max_examples=6, max_length=4
    )
    assert {law.name for law in laws} >= {"associativity", "action_compatibility"}


def test_filter_elements_carry_the_marginal_loglik():
    """The log-normalisers of the scan (not used by `lgssm_filter`, which sums
    prediction errors) also give log p(y), for every method."""
    from lgssm_reference import dense_posterior
    from test_lgssm import _case

    params, y, u = _case("tv-inputs-missing")
    expected = dense_posterior(params, y, u)["marginal_loglik"]
    elems = jax.jit(lambda *a: lgssm_impl._filter_elements(lgssm_impl._model(*a)))(params, y, u)
    for method in (*METHODS, scanalg.Blocked(block_size=3)):
        total = jax.jit(lambda e: scanalg.reduce(scanalg.lgssm.KalmanFilter(), e, method=method))(
            elems
        )
        np.testing.assert_allclose(total.loglik, expected, rtol=1e-10)
        np.testing.assert_allclose(total.A, 0, atol=1e-12)  # a prefix from t = 0
