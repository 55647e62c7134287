"""Benchmark tasks for linear-chain CRFs: `crf-partition` and `crf-marginals`.

The problem is the usual tagging CRF: unary scores `(T, K)` and one transition matrix
`(K, K)`. Besides scanalg's methods, every problem times

- `lax.scan`: a hand-written `jax.lax.scan` forward algorithm in log space (for
  `crf-marginals`, its `jax.grad`), the baseline;
- `Entropy`, `KMax(4)` (`crf-partition`): the same chain summed under those
  semirings (`scanalg.crf.path_sum`, `method="auto"`), to compare with the `Log` scan;
- `Log(log space)` (`crf-partition`): the `Log` scan without its probability-space
  path (`scanalg.semirings.chain_sum(..., fast=False)`), i.e. the log-space machinery
  that `KMax(4)` always runs on (and `Entropy` where probability space is not exact);
- `backward` (`crf-marginals`): `scanalg.crf.marginals(by="backward")` (the explicit
  backward scan; the default is `by="grad"`), `method="auto"`.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .. import crf, semirings
from ..kit import Segments

CRF_TASKS = ("crf-partition", "crf-marginals")


def crf_problem(T: int, K: int, dtype, seed: int):
    """Random `(potentials (K, K), unaries (T, K))`."""
    rng = np.random.default_rng(seed)
    potentials = rng.normal(size=(K, K)) + 2.0 * np.eye(K)
    unaries = 2.0 * rng.normal(size=(T, K))
    return jnp.asarray(potentials, dtype), jnp.asarray(unaries, dtype)


def baseline_log_partition(potentials, unaries):
    """The forward algorithm in log space, written by hand with `jax.lax.scan`."""

    def step(alpha, u):
        return jax.nn.logsumexp(alpha[:, None] + potentials, axis=0) + u, None

    alpha, _ = jax.lax.scan(step, unaries[0], unaries[1:])
    return jax.nn.logsumexp(alpha)


baseline_marginals = jax.grad(baseline_log_partition, argnums=(0, 1))


def _log_space(potentials, unaries):
    layout = Segments(None, unaries.shape[0])
    return semirings.chain_sum(semirings.Log(), unaries, potentials, layout, "auto", fast=False)


def build_crf(task: str, T: int, K: int, dtype, methods, method: Callable, seed: int = 0):
    """`{entry name: (function, args)}` for one CRF problem; `method(name)` turns a
    method name into what `scanalg.scan` takes."""
    args = crf_problem(T, K, dtype, seed)
    entries = {}
    if task == "crf-partition":
        for m in methods:
            entries[m] = (lambda p, u, _m=method(m): crf.log_partition(p, u, method=_m), args)
        entries["lax.scan"] = (baseline_log_partition, args)
        entries["Log(log space)"] = (_log_space, args)
        for name, semiring in (("Entropy", semirings.Entropy()), ("KMax(4)", semirings.KMax(4))):
            entries[name] = (
                lambda p, u, _s=semiring: crf.path_sum(p, u, semiring=_s, method="auto"),
                args,
            )
    elif task == "crf-marginals":
        for m in methods:
            entries[m] = (lambda p, u, _m=method(m): crf.marginals(p, u, method=_m), args)
        entries["lax.scan"] = (baseline_marginals, args)
        entries["backward"] = (lambda p, u: crf.marginals(p, u, method="auto", by="backward"), args)
    else:
        raise ValueError(f"Unknown CRF task {task!r}; valid: {', '.join(CRF_TASKS)}.")
    return entries
