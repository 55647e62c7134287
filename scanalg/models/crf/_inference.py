r"""Linear-chain conditional random fields: inference over a semiring, on any scan method.

A linear-chain CRF over states $1..K$ scores a path $z_{1:T}$ by

$$s(z) = \sum_{t=1}^{T} u_t[z_t] + \sum_{t=1}^{T-1} \psi_t[z_t, z_{t+1}], \qquad
  p(z) = e^{s(z)} / Z, \quad Z = \sum_z e^{s(z)},$$

with log-potentials `potentials` $\psi$ of shape `(T-1, K, K)` (`potentials[t]` joins
step $t$ to $t+1$), or `(K, K)` for the same at every step, and optional unary
log-potentials `unaries` $u$ of shape `(T, K)` (zero if not given). Entries may be
$-\infty$ (forbidden states and transitions); NaN and $+\infty$ are errors.

Every function is one forward scan of `scanalg.semirings.ChainMessages` over a
semiring (the log-partition function under `Log`, the best path under `Max`, the
$k$ best under `KMax(k)`, the entropy under `Entropy`), so `method=` is passed to
`scanalg.scan` and every method returns the same answer (paths and samples are
integer and identical). Messages are kept normalised in log space, so float32 is
accurate for long chains, and gradients with respect to the potentials are NaN-free
on every method, also with $-\infty$ entries.

**Ragged batches.** With `lengths` (shape `(B,)`), the arrays hold $B$ sequences of
these lengths packed along time ($\sum_b T_b = T$; the time-varying `potentials` are
packed the same way, `(T-1, K, K)`, and the entries joining one sequence to the next
are ignored). Every sequence gets exactly its own answer, in one scan; per-sequence
results get a leading axis of length $B$, per-step results stay packed.

**Impossible chains.** If every path has score $-\infty$ ($Z = 0$), `log_partition`
is $-\infty$, `marginals` are zero, `entropy` is zero, best scores are $-\infty$, and
paths and samples are valid state indices without meaning. Nothing is NaN.
"""

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray, Scalar

from ..._methods import AbstractScanMethod, as_method
from ..._segments import Segments
from ..._validate import attach_checks, checks_arguments, float_dtype, positive_count
from ...semirings import (
    AbstractSemiring,
    ChainMarginals,
    Entropy,
    KMax,
    Log,
    Max,
    chain_best,
    chain_marginals,
    chain_sample,
    chain_sum,
)

_Potentials = (
    Float[Array, "num_timesteps_minus_1 num_states num_states"]
    | Float[Array, "num_states num_states"]
)
_Unaries = Float[Array, "num_timesteps num_states"] | None
_Method = str | AbstractScanMethod


class CRFPaths(NamedTuple):
    r"""Best paths and their scores.

    **Fields:**

    - `scores`: the scores $s(z)$ (unnormalised log-probabilities), best first: shape
      `()` for `argmax`, `(k,)` for `kbest`, with a leading `(B,)` for a ragged batch.
    - `paths`: the integer state paths: shape `(T,)` for `argmax`, `(k, T)` for
      `kbest` (packed along time for a ragged batch).
    """

    scores: Float[Array, "*batch"]
    paths: Int[Array, "*k num_timesteps"]


# --------------------------------------------------------------------------------------
# Validation.
# --------------------------------------------------------------------------------------


def _check_shapes(potentials, unaries) -> int:
    """`ValueError` for arrays of the wrong shapes, naming the argument; returns $T$."""
    psi = jnp.shape(potentials)
    if len(psi) not in (2, 3) or psi[-1] != psi[-2] or psi[-1] < 1:
        raise ValueError(
            "`potentials` must have shape (T-1, K, K) (time-varying log-potentials) or "
            f"(K, K) (the same at every step), with K >= 1; got shape {psi}."
        )
    k = psi[-1]
    if unaries is None:
        if len(psi) == 2:
            raise ValueError(
                "`unaries` of shape (T, K) are needed with (K, K) `potentials` (they give "
                "the length T)."
            )
        return psi[0] + 1
    u = jnp.shape(unaries)
    if len(u) != 2 or u[0] < 1 or u[1] != k:
        raise ValueError(
            f"`unaries` must have shape (T, K) = (T, {k}) with T >= 1 to match "
            f"`potentials` of shape {psi}; got shape {u}."
        )
    if len(psi) == 3 and psi[0] != u[0] - 1:
        raise ValueError(
            f"Time-varying `potentials` must have shape (T-1, K, K) = "
            f"({u[0] - 1}, {k}, {k}) for `unaries` of shape {u}; got shape {psi}."
        )
    return u[0]


def _check_arguments(arguments: dict) -> None:
    """Before tracing: shapes (`ValueError` naming the argument), `lengths` against the
    data (`Segments.check`), `method`, `semiring`, `by` and the counts `k` and
    `num_samples`."""
    t = _check_shapes(arguments["potentials"], arguments["unaries"])
    arguments["lengths"] = Segments.check(arguments.get("lengths"), t)
    as_method(arguments["method"])
    for count in ("num_samples", "k"):
        if arguments.get(count) is not None:
            arguments[count] = positive_count(arguments[count], count)
    if "semiring" in arguments and not isinstance(arguments["semiring"], AbstractSemiring):
        semiring = arguments["semiring"]
        raise TypeError(
            "`semiring` must be an instance of scanalg.semirings.AbstractSemiring (e.g. "
            f"Log(), Max(), KMax(4), Entropy()), got {type(semiring).__name__}: {semiring!r}."
        )
    if arguments.get("by", "grad") not in ("backward", "grad"):
        raise ValueError(f"`by` must be 'backward' or 'grad', got {arguments['by']!r}.")


def _jit(fn: Callable) -> Callable:
    """`equinox.filter_jit`, after `_check_arguments`."""
    return checks_arguments(_check_arguments)(eqx.filter_jit(fn))


def _prepare(potentials, unaries, lengths) -> tuple[Array, Array, Segments]:
    """Check values (`error_if`; the shapes were checked before tracing) and cast to one
    float dtype: `(unaries, potentials, layout)`, unaries `(T, K)`."""
    psi = jnp.asarray(potentials)
    if unaries is None:
        u = jnp.zeros((psi.shape[0] + 1, psi.shape[-1]), psi.dtype)
    else:
        u = jnp.asarray(unaries)
    dtype = float_dtype(psi, u, family="CRF")
    psi, u = psi.astype(dtype), u.astype(dtype)
    bad_psi = jnp.any(jnp.isnan(psi) | (psi == jnp.inf))
    bad_u = jnp.any(jnp.isnan(u) | (u == jnp.inf))
    checks = [
        (bad_psi, "`potentials` contains NaN or +inf."),
        (bad_u, "`unaries` contains NaN or +inf."),
    ]
    u = attach_checks(u, checks)  # (every output depends on `u`)
    return u, psi, Segments(lengths, u.shape[0])


def _single(layout: Segments, x):
    """Drop the batch axis of one chain's per-sequence results."""
    return jax.tree.map(lambda a: a[0], x) if layout.single else x


# --------------------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------------------


@_jit
def path_sum(
    potentials: _Potentials,
    unaries: _Unaries = None,
    *,
    semiring: AbstractSemiring = Log(),
    lengths: Int[Array, " num_sequences"] | None = None,
    method: _Method = "auto",
) -> Array:
    r"""The semiring sum over all paths, $\bigoplus_z \mathrm{from\_scores}(s(z))$.

    The general form of `log_partition` (`Log()`), `entropy` (`Entropy()`), the best
    score (`Max()`) and the $k$ best scores (`KMax(k)`): one forward scan of
    `scanalg.semirings.ChainMessages` over `semiring`.

    **Arguments:**

    - `potentials`: log-potentials $\psi$, shape `(T-1, K, K)` or `(K, K)`.
    - `unaries`: optional unary log-potentials $u$, shape `(T, K)` (required with
      `(K, K)` potentials).
    - `semiring`: an `scanalg.semirings.AbstractSemiring` instance.
    - `lengths`: optional sequence lengths of a packed ragged batch, shape `(B,)`.
    - `method`: the scan method (see `scanalg.scan`).

    **Returns:**

    The sum, shape `semiring.value_shape` (with a leading `(B,)` for a ragged batch).
    """
    u, psi, layout = _prepare(potentials, unaries, lengths)
    return _single(layout, chain_sum(semiring, u, psi, layout, method))


@_jit
def log_partition(
    potentials: _Potentials,
    unaries: _Unaries = None,
    *,
    lengths: Int[Array, " num_sequences"] | None = None,
    method: _Method = "auto",
) -> Scalar | Float[Array, " num_sequences"]:
    r"""The log-partition function $\log Z = \log \sum_z e^{s(z)}$.

    `path_sum` under `Log()`. Its gradient with respect to `unaries` and `potentials`
    is the marginals (see `marginals`).

    **Arguments:** as for `path_sum`, without `semiring`.

    **Returns:**

    $\log Z$, a scalar (shape `(B,)` for a ragged batch).
    """
    u, psi, layout = _prepare(potentials, unaries, lengths)
    return _single(layout, chain_sum(Log(), u, psi, layout, method))


@_jit
def entropy(
    potentials: _Potentials,
    unaries: _Unaries = None,
    *,
    lengths: Int[Array, " num_sequences"] | None = None,
    method: _Method = "auto",
) -> Scalar | Float[Array, " num_sequences"]:
    r"""The entropy $H(p) = -\sum_z p(z) \log p(z)$ of the CRF's distribution over
    paths, in one scan.

    `path_sum` under the expectation semiring `Entropy()`, which carries
    $(\log Z, H)$ pairs.

    **Arguments:** as for `log_partition`.

    **Returns:**

    $H$ in nats, a scalar (shape `(B,)` for a ragged batch).
    """
    u, psi, layout = _prepare(potentials, unaries, lengths)
    return _single(layout, chain_sum(Entropy(), u, psi, layout, method)[:, 1])


@_jit
def marginals(
    potentials: _Potentials,
    unaries: _Unaries = None,
    *,
    lengths: Int[Array, " num_sequences"] | None = None,
    method: _Method = "auto",
    by: str = "grad",
) -> ChainMarginals:
    r"""Unary and pairwise marginal probabilities,
    $p(z_t = k)$ and $p(z_t = i, z_{t+1} = j)$.

    Two exact routes, which agree to rounding:

    - `by="grad"` (default): the gradient of $\sum_b \log Z_b$ with respect to
      `unaries` and `potentials` (`jax.grad` through the forward scan; the faster
      route, measured, since the forward scan of fixed potentials runs in
      probability space on `Sequential`).
    - `by="backward"`: a forward and an explicit backward scan of
      `scanalg.semirings.ChainMessages` (`scanalg.semirings.chain_marginals`).

    **Arguments:** as for `log_partition`, and `by`.

    **Returns:**

    `ChainMarginals(unary, pairwise)`: `unary` of shape `(T, K)`; `pairwise` of shape
    `(T-1, K, K)` for time-varying potentials (zero at the steps joining two packed
    sequences), or the expected transition counts, summed over steps (and sequences),
    `(K, K)`, for fixed ones.
    """
    u, psi, layout = _prepare(potentials, unaries, lengths)
    if by == "backward":
        return chain_marginals(u, psi, layout, method)

    def total(u, psi):
        return jnp.sum(chain_sum(Log(), u, psi, layout, method))

    grad_u, grad_psi = jax.grad(total, argnums=(0, 1))(u, psi)
    return ChainMarginals(grad_u, grad_psi)


@_jit
def argmax(
    potentials: _Potentials,
    unaries: _Unaries = None,
    *,
    lengths: Int[Array, " num_sequences"] | None = None,
    method: _Method = "auto",
) -> CRFPaths:
    r"""The best path $\arg\max_z s(z)$ and its score (Viterbi).

    A forward scan under `Max()` that also reads out back-pointers, which are maps
    $[K] \to [K]$ composed by a reverse scan of `scanalg.monoids.FiniteFunction`. Ties
    go to the path that is smallest in reverse lexicographic order ($z_T$ first).
    (The gradient of the best score with respect to `unaries` is the indicator of the
    best path when it is unique: another exact route.)

    **Arguments:** as for `log_partition`.

    **Returns:**

    `CRFPaths(scores, paths)`: the best score (shape `()`, or `(B,)`) and the path
    (shape `(T,)`).
    """
    u, psi, layout = _prepare(potentials, unaries, lengths)
    best = chain_best(Max(), u, psi, layout, method)
    return CRFPaths(_single(layout, best.scores[:, 0]), best.paths[0])


@_jit
def kbest(
    potentials: _Potentials,
    unaries: _Unaries = None,
    *,
    k: int,
    lengths: Int[Array, " num_sequences"] | None = None,
    method: _Method = "auto",
) -> CRFPaths:
    r"""The $k$ best paths and their scores, best first.

    A forward scan under `KMax(k)` with back-pointers to (state, rank) pairs, followed
    back by composition. Ties go to the path that is smallest in reverse
    lexicographic order ($z_T$ first, then $z_{T-1}$, ...). If $k$ exceeds the number
    of paths $K^T$, the extra scores are $-\infty$ and their paths are valid state
    indices but not distinct paths (no error: the same rule for every sequence of a
    ragged batch, under `jit`).

    **Arguments:** as for `log_partition`, and `k`, an int $\ge 1$.

    **Returns:**

    `CRFPaths(scores, paths)`: scores of shape `(k,)` (or `(B, k)`), paths of shape
    `(k, T)`.
    """
    u, psi, layout = _prepare(potentials, unaries, lengths)
    best = chain_best(KMax(k), u, psi, layout, method)
    return CRFPaths(_single(layout, best.scores), best.paths)


@_jit
def sample(
    key: PRNGKeyArray,
    potentials: _Potentials,
    unaries: _Unaries = None,
    *,
    num_samples: int | None = None,
    lengths: Int[Array, " num_sequences"] | None = None,
    method: _Method = "auto",
) -> Int[Array, "*num_samples num_timesteps"]:
    r"""Exact samples from $p(z) \propto e^{s(z)}$.

    Forward filtering under `Log()`, then backward sampling by composition
    (`scanalg.semirings.chain_sample`): one uniform per step, each backward step a
    map $[K] \to [K]$ built by the inverse CDF, composed by a reverse scan of
    `scanalg.monoids.FiniteFunction`. **The same key gives the same paths on every
    method** (up to ties at rounding level).

    **Arguments:**

    - `key`: a `jax.random` key.
    - `potentials`, `unaries`, `lengths`, `method`: as for `log_partition`.
    - `num_samples`: `None` for one path, or the number of paths.

    **Returns:**

    Integer paths of shape `(T,)`, or `(num_samples, T)`.
    """
    u, psi, layout = _prepare(potentials, unaries, lengths)
    paths = chain_sample(key, u, psi, layout, num_samples or 1, method)
    return paths[0] if num_samples is None else paths
