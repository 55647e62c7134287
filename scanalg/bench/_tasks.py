"""Benchmark tasks: random problems of a given length and size, and the functions to time."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import scanalg

from ._crf import CRF_TASKS, build_crf

Runner = Callable[..., Any]


def _hmm_problem(T: int, K: int, dtype, seed: int):
    rng = np.random.default_rng(seed)
    initial = rng.dirichlet(np.ones(K))
    logits = rng.normal(size=(K, K)) + 2.0 * np.eye(K)
    trans = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    ll = rng.normal(size=(T, K))
    args = (jnp.asarray(initial, dtype), jnp.asarray(trans, dtype), jnp.asarray(ll, dtype))
    return args


def _lgssm_problem(T: int, D: int, dtype, seed: int):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(D, D)))
    E = max(1, D // 2)
    arrays = dict(
        initial_mean=np.zeros(D),
        initial_cov=np.eye(D),
        dynamics_weights=0.95 * q,
        dynamics_cov=0.1 * np.eye(D),
        emissions_weights=rng.normal(size=(E, D)) / np.sqrt(D),
        emissions_cov=0.5 * np.eye(E),
    )
    arrays = {k: jnp.asarray(v, dtype) for k, v in arrays.items()}
    emissions = jnp.asarray(rng.normal(size=(T, E)), dtype)
    return arrays, emissions


def _lgssm_params(arrays, backend: str):
    if backend == "dynamax":
        from dynamax.linear_gaussian_ssm.inference import make_lgssm_params

        return make_lgssm_params(**{k: v for k, v in arrays.items()})
    return scanalg.LGSSMParams(**arrays)


HMM_TASKS = {
    "hmm-filter": "hmm_filter",
    "hmm-smoother": "hmm_smoother",
    "hmm-sample": "hmm_posterior_sample",
    "hmm-mode": "hmm_posterior_mode",
}
LGSSM_TASKS = {
    "lgssm-filter": "lgssm_filter",
    "lgssm-smoother": "lgssm_smoother",
    "lgssm-sample": "lgssm_posterior_sample",
}
TASKS = (*HMM_TASKS, *LGSSM_TASKS, *CRF_TASKS, "monoid")


def _monoid_problem(name: str, T: int, n: int, dtype, seed: int):
    """A monoid instance and elements of length T with size parameter n."""
    rng = np.random.default_rng(seed)
    monoids = scanalg.monoids
    if name in ("Sum", "Product", "Max", "Min", "LogAddExp"):
        x = rng.uniform(0.9, 1.1, size=(T, n))
        return getattr(monoids, name)(), jnp.asarray(x, dtype), None
    if name == "MatMul":
        q, _ = np.linalg.qr(rng.normal(size=(T, n, n)))
        return monoids.MatMul(), jnp.asarray(q, dtype), None
    if name == "Affine":
        q, _ = np.linalg.qr(rng.normal(size=(T, n, n)))
        elems = (jnp.asarray(0.9 * q, dtype), jnp.asarray(rng.normal(size=(T, n)), dtype))
        return monoids.Affine(), elems, jnp.zeros(n, dtype)
    if name == "DiagonalAffine":
        elems = (
            jnp.asarray(rng.uniform(0.5, 0.99, size=(T, n)), dtype),
            jnp.asarray(rng.normal(size=(T, n)), dtype),
        )
        return monoids.DiagonalAffine(), elems, jnp.zeros(n, dtype)
    if name == "FiniteFunction":
        f = rng.integers(0, n, size=(T, n)).astype(np.int32)
        return monoids.FiniteFunction(), jnp.asarray(f), None
    raise ValueError(f"Unknown monoid {name!r} for the `monoid` task.")


# Method names the benchmark accepts besides `scanalg.scan`'s own.
# `Parallel`'s algorithms on the inputs themselves (`leaf_size=1`; `parallel` scans
# serial leaves first).
EXTRA_METHODS = {
    "associative_scan": scanalg.Parallel(algorithm="associative_scan", leaf_size=1),
    "doubling": scanalg.Parallel(algorithm="doubling", leaf_size=1),
    "hybrid": scanalg.Parallel(levels=6, leaf_size=1),
}


def method(name: str) -> "scanalg.AbstractScanMethod | str":
    """A method name as `scanalg.scan` takes it, or one of `EXTRA_METHODS`."""
    return EXTRA_METHODS.get(name, name)


def build(task: str, T: int, size: int, dtype, methods, compare, monoid: str, seed: int = 0):
    """Return `{entry name: (function, args)}` for one problem.

    `compare` is `None`, `"dynamax"` (its serial and parallel functions),
    `"dynamax-serial"` or `"dynamax-parallel"` (only the serial or the parallel ones)."""
    key = jax.random.PRNGKey(seed)
    entries: dict[str, tuple[Runner, tuple]] = {}
    if task in HMM_TASKS:
        args = _hmm_problem(T, size, dtype, seed)
        fn = getattr(scanalg, HMM_TASKS[task])
        if task == "hmm-sample":
            args = (key, *args)
        for m in methods:
            entries[m] = (lambda *a, _m=method(m): fn(*a, method=_m), args)
        if compare:
            from dynamax.hidden_markov_model import inference, parallel_inference

            if compare != "dynamax-parallel":
                entries["dynamax-serial"] = (getattr(inference, HMM_TASKS[task]), args)
            if compare != "dynamax-serial" and hasattr(parallel_inference, HMM_TASKS[task]):
                entries["dynamax-parallel"] = (getattr(parallel_inference, HMM_TASKS[task]), args)
    elif task in LGSSM_TASKS:
        arrays, emissions = _lgssm_problem(T, size, dtype, seed)
        fn = getattr(scanalg, LGSSM_TASKS[task])
        params = _lgssm_params(arrays, "scanalg")
        args = (params, emissions) if task != "lgssm-sample" else (key, params, emissions)
        for m in methods:
            entries[m] = (lambda *a, _m=method(m): fn(*a, method=_m), args)
        if compare:
            from dynamax.linear_gaussian_ssm import inference, parallel_inference

            dparams = _lgssm_params(arrays, "dynamax")
            dargs = (dparams, emissions) if task != "lgssm-sample" else (key, dparams, emissions)
            if compare != "dynamax-parallel":
                entries["dynamax-serial"] = (getattr(inference, LGSSM_TASKS[task]), dargs)
            if compare != "dynamax-serial":
                entries["dynamax-parallel"] = (
                    getattr(parallel_inference, LGSSM_TASKS[task]),
                    dargs,
                )
    elif task == "monoid":
        m_obj, elems, init = _monoid_problem(monoid, T, size, dtype, seed)
        for m in methods:
            entries[m] = (
                lambda e, i, _m=method(m): scanalg.scan(m_obj, e, init=i, method=_m),
                (elems, init),
            )
    elif task in CRF_TASKS:
        entries = build_crf(task, T, size, dtype, methods, method, seed)
    else:
        raise ValueError(f"Unknown task {task!r}; valid tasks are {', '.join(TASKS)}.")
    return entries
