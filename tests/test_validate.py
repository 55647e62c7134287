"""Value checks under `jit` (`scanalg.kit.attach_checks`): what they return, what they
report, and that no model family passes a whole sequence through one.

An array that passes through `equinox.error_if` comes out of a `lax.cond` whose branch
calls back to the host, and XLA places it on one device: a sequence split over
devices along time (`scanalg.Sharded`) would be gathered there whole, and split again.
So every family ties its checks to a scalar (`attach_checks`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend import core as jcore

from scanalg import crf, hmm, lgssm
from scanalg.kit import any_failed, attach_checks

_check = jax.jit(lambda x, bad: attach_checks(x, [(bad[0], "first"), (bad[1], "second")]))


def test_attach_checks_returns_the_same_values():
    x = jnp.array([-0.0, 0.0, -jnp.inf, jnp.inf, jnp.nan, 1e-300, -3.5])
    y = _check(x, jnp.array([False, False]))
    assert y.dtype == x.dtype
    assert np.array_equal(np.asarray(y), np.asarray(x), equal_nan=True)
    assert np.array_equal(np.signbit(y), np.signbit(x))  # (-0.0 stays -0.0)
    ints = jnp.arange(-3, 3, dtype=jnp.int32)
    assert np.array_equal(_check(ints, jnp.array([False, False])), ints)


@pytest.mark.parametrize("bad, message", [([True, True], "first"), ([False, True], "second")])
def test_attach_checks_reports_the_first_failure(bad, message):
    # (`equinox.EquinoxRuntimeError` under `equinox.filter_jit`, as the families call
    # it; under `jax.jit` it reaches the caller as JAX's runtime error)
    with pytest.raises(RuntimeError, match=message):
        jax.block_until_ready(_check(jnp.zeros(3), jnp.array(bad)))


def test_any_failed():
    assert not any_failed([(jnp.array(False), "a"), (np.False_, "b")])
    assert any_failed([(jnp.array(False), "a"), (jnp.array(True), "b")])
    assert jax.jit(lambda b: any_failed([(b, "a")]))(jnp.array(True)).shape == ()


T, K, N, M = 13, 3, 2, 1  # (T: a length that no other array here has)


def _calls():
    rng = np.random.default_rng(0)
    params = lgssm.LGSSMParams(
        initial_mean=np.zeros(N),
        initial_cov=np.eye(N),
        dynamics_weights=np.eye(N),
        dynamics_cov=0.1 * np.eye(N),
        emissions_weights=np.ones((M, N)),
        emissions_cov=np.eye(M),
    )
    y = rng.normal(size=(T, M))
    pi, a, ll = np.full(K, 1 / K), np.full((K, K), 1 / K), rng.normal(size=(T, K))
    psi, u = rng.normal(size=(T - 1, K, K)), rng.normal(size=(T, K))
    # One call per place where a family checks values.
    return {
        "lgssm_smoother": lambda: lgssm.lgssm_smoother(params, y),
        "hmm_smoother": lambda: hmm.hmm_smoother(pi, a, ll),
        "hmm_two_filter_smoother": lambda: hmm.hmm_two_filter_smoother(pi, a, ll),
        "crf.marginals": lambda: crf.marginals(psi, u),
    }


def _subjaxprs(eqn):
    for value in eqn.params.values():
        for sub in value if isinstance(value, (tuple, list)) else [value]:
            if isinstance(sub, jcore.ClosedJaxpr):
                yield sub.jaxpr
            elif isinstance(sub, jcore.Jaxpr):
                yield sub


def _calls_back(jaxpr) -> bool:
    return any(
        "callback" in eqn.primitive.name or any(_calls_back(sub) for sub in _subjaxprs(eqn))
        for eqn in jaxpr.eqns
    )


def _checked_shapes(jaxpr) -> list[tuple[int, ...]]:
    """Shapes of the arrays that come out of a `cond` with a host callback (a check)."""
    shapes = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "cond" and any(
            _calls_back(branch.jaxpr) for branch in eqn.params["branches"]
        ):
            shapes += [v.aval.shape for v in eqn.outvars]
        for sub in _subjaxprs(eqn):
            shapes += _checked_shapes(sub)
    return shapes


@pytest.mark.parametrize("name", list(_calls()))
def test_no_sequence_passes_through_a_check(name):
    shapes = _checked_shapes(jax.make_jaxpr(_calls()[name])().jaxpr)
    assert shapes, "found no value check: the test no longer sees them"
    assert not [s for s in shapes if s and s[0] in (T - 1, T)], shapes
