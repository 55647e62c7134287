"""Shared machinery of the ported dynamax suites: the scan methods they run for, and
scanalg's functions with dynamax's signatures, bound to one method and jitted once per
method, so every case with the same shapes reuses one compiled function.

The suites compile each function for every method and every shape that dynamax's tests
use (about 250 programs), with the suite's cheaper XLA code generation
(`tests/xla_codegen.py`).
"""

import contextlib
import dataclasses
import functools
import types

import jax
import numpy as np
from helpers import mesh, method_id

import scanalg
from scanalg.models.hmm._dynamax import dynamax_signature as hmm_signature
from scanalg.models.lgssm._dynamax import dynamax_signature as lgssm_signature

# The methods the ports run for: every method class, as a user names it (`Auto()`
# picks one of the others, and compiles the same programs, which the persistent
# compilation cache then reads back), and `Sharded` over the suite's four in-process
# CPU devices. (`helpers.all_methods` adds `Parallel(algorithm="associative_scan")`
# and small blocks scanned in parallel, which agree with these in the rest of the
# suite.)
METHODS = (
    scanalg.Sequential(),
    scanalg.Parallel(),
    scanalg.Blocked(),
    scanalg.Auto(),
    scanalg.Sharded(mesh, "time"),
)
IDS = [method_id(m) for m in METHODS]


# The suite's promotion settings (strict, when the suite sets them), for scanalg's code.
_SUITE_RANK_PROMOTION = jax.config.jax_numpy_rank_promotion
_SUITE_DTYPE_PROMOTION = jax.config.jax_numpy_dtype_promotion


@contextlib.contextmanager
def permissive():
    """dynamax's code (its tests' setup, references and assertions) relies on implicit
    rank and dtype promotion, which the suite's strict settings forbid."""
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        yield


def suite_settings(fn):
    """`fn` run under the suite's promotion settings, wherever it is called from."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with (
            jax.numpy_rank_promotion(_SUITE_RANK_PROMOTION),
            jax.numpy_dtype_promotion(_SUITE_DTYPE_PROMOTION),
        ):
            return fn(*args, **kwargs)

    return wrapper


def _key(x):
    """A hashable stand-in for `x`, by value (arrays by dtype, shape and bytes)."""
    if isinstance(x, tuple | list):
        return (type(x).__name__, *map(_key, x))
    if isinstance(x, dict):
        return tuple(sorted((k, _key(v)) for k, v in x.items()))
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        a = np.asarray(x)
        return ("array", a.dtype.str, a.shape, a.tobytes())
    return x


def memo(fn):
    """`fn`, computed once per value of its arguments: the ported suites' data and
    references are the same for every method (their arrays are immutable)."""
    cache = {}

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        key = _key((args, kwargs))
        if key not in cache:
            cache[key] = fn(*args, **kwargs)
        return cache[key]

    return wrapper


class MemoMethods:
    """`obj` whose method calls are memoised (`memo`): for a reference object that
    the suites query with the same arguments for every method."""

    def __init__(self, obj):
        self._obj = obj
        self._methods = {}

    def __getattr__(self, name):
        if name not in self._methods:
            self._methods[name] = memo(getattr(self._obj, name))
        return self._methods[name]


@functools.cache
def hmm_api(method) -> types.SimpleNamespace:
    """scanalg's HMM functions with dynamax's signatures (as its `inference` module has
    them) and `method` bound. The transition function of `transition_fn=` is evaluated
    outside the `jit` (it is not an array), as `dynamax_signature` does."""

    def bind(fn, *, static=(), **kwargs):
        if getattr(fn, "__dynamax_signature__", False):
            fn = fn.__wrapped__  # (jit the function itself; the signature goes outside)
        jitted = jax.jit(functools.partial(fn, method=method), static_argnames=static)
        return suite_settings(hmm_signature(**kwargs)(jitted))

    hmm = scanalg.hmm
    return types.SimpleNamespace(
        hmm_filter=bind(hmm.hmm_filter),
        hmm_smoother=bind(hmm.hmm_smoother, compute_trans_probs=True),
        hmm_posterior_sample=bind(hmm.hmm_posterior_sample),
        hmm_posterior_mode=bind(hmm.hmm_posterior_mode),
        hmm_backward_filter=bind(hmm.hmm_backward_filter),
        hmm_two_filter_smoother=bind(hmm.hmm_two_filter_smoother, compute_trans_probs=True),
        hmm_fixed_lag_smoother=bind(hmm.hmm_fixed_lag_smoother, static=("window_size",)),
        compute_transition_probs=suite_settings(hmm.compute_transition_probs),
    )


@functools.cache
def lgssm_api(method) -> types.SimpleNamespace:
    """scanalg's LGSSM functions with dynamax's signatures and `method` bound, jitted."""

    def bind(fn, **kwargs):
        if getattr(fn, "__dynamax_signature__", False):
            fn = fn.__wrapped__
        bound = lgssm_signature(**kwargs)(functools.partial(fn, method=method))
        return suite_settings(jax.jit(bound))

    lgssm = scanalg.lgssm
    return types.SimpleNamespace(
        lgssm_filter=bind(lgssm.lgssm_filter),
        lgssm_smoother=bind(lgssm.lgssm_smoother),
        lgssm_posterior_sample=bind(lgssm.lgssm_posterior_sample, jitter=True),
    )


def as_dict(posterior) -> dict:
    """`posterior._asdict()` for a NamedTuple, the fields of a dataclass (an
    `eqx.Module`) otherwise."""
    if hasattr(posterior, "_asdict"):
        return posterior._asdict()
    return {f.name: getattr(posterior, f.name) for f in dataclasses.fields(posterior)}
