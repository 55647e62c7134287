"""Shared machinery of the ported dynamax suites: the scan methods they run for, and
scanalg's functions with dynamax's signatures, bound to one method (built once per
method, so every case with the same shapes reuses one compiled function)."""

import contextlib
import dataclasses
import functools
import types

import equinox as eqx
import jax
import pytest
from helpers import all_methods

import scanalg
from scanalg.models.hmm._dynamax import dynamax_signature as hmm_signature
from scanalg.models.lgssm._dynamax import dynamax_signature as lgssm_signature

# Every method of the suite, plus the work-efficient parallel algorithm.
METHODS = tuple(all_methods) + tuple(
    m for m in (scanalg.Parallel(algorithm="associative_scan"),) if m not in all_methods
)
IDS = [repr(m) for m in METHODS]


def method_fixture(scope="function"):
    """A fixture parametrised over `METHODS`."""
    return pytest.fixture(scope=scope, params=METHODS, ids=IDS)(lambda request: request.param)


@functools.cache
def hmm_api(method) -> types.SimpleNamespace:
    """scanalg's HMM functions as dynamax's `inference` module has them, with `method`."""

    def bind(fn, **kwargs):
        return hmm_signature(**kwargs)(functools.partial(fn, method=method))

    hmm = scanalg.hmm
    return types.SimpleNamespace(
        hmm_filter=bind(hmm.hmm_filter),
        hmm_smoother=bind(hmm.hmm_smoother, compute_trans_probs=True),
        hmm_posterior_sample=bind(hmm.hmm_posterior_sample),
        hmm_posterior_mode=bind(hmm.hmm_posterior_mode),
        hmm_backward_filter=functools.partial(hmm.hmm_backward_filter, method=method),
        hmm_two_filter_smoother=functools.partial(hmm.hmm_two_filter_smoother, method=method),
        hmm_fixed_lag_smoother=functools.partial(hmm.hmm_fixed_lag_smoother, method=method),
        compute_transition_probs=hmm.compute_transition_probs,
    )


@functools.cache
def lgssm_api(method) -> types.SimpleNamespace:
    """scanalg's LGSSM functions with dynamax's signatures and `method`, jitted."""

    def bind(fn, **kwargs):
        return eqx.filter_jit(lgssm_signature(**kwargs)(functools.partial(fn, method=method)))

    lgssm = scanalg.lgssm
    return types.SimpleNamespace(
        lgssm_filter=bind(lgssm.lgssm_filter),
        lgssm_smoother=bind(lgssm.lgssm_smoother),
        lgssm_posterior_sample=bind(lgssm.lgssm_posterior_sample, jitter=True),
    )


@contextlib.contextmanager
def permissive():
    """dynamax and TFP (the references) rely on implicit rank and dtype promotion, which
    the suite's strict settings forbid; scanalg's code runs outside this block."""
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        yield


def as_dict(posterior) -> dict:
    """`posterior._asdict()` for a NamedTuple, the fields of a dataclass (an
    `eqx.Module`) otherwise."""
    if hasattr(posterior, "_asdict"):
        return posterior._asdict()
    return {f.name: getattr(posterior, f.name) for f in dataclasses.fields(posterior)}
