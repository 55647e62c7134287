r"""Chain dynamic programs over a semiring, for packed (ragged) batches of chains.

A *chain* over states $1..K$ of length $T$ scores a path $z_{1:T}$ by

$$s(z) = \sum_{t=1}^{T} u_t[z_t] + \sum_{t=1}^{T-1} \psi_t[z_t, z_{t+1}]$$

(unary scores `unaries` of shape `(T, K)`, pairwise scores `potentials` of shape
`(T-1, K, K)`, or `(K, K)` for the same $\psi$ at every step; $-\infty$ allowed). The
sum over all $K^T$ paths in a semiring, $\bigoplus_z \mathrm{from\_scores}(s(z))$, is
one forward scan of `ChainMessages`; which question it answers is the semiring's
choice: `Log` the log-partition function, `Max` the best score, `KMax(k)` the $k$
best, `Entropy` the entropy of $p(z) \propto e^{s(z)}$.

A batch of $B$ chains of lengths $T_1..T_B$ is packed along time (the arrays have
$N = \sum_b T_b$ steps, and `potentials[t]` joins step $t$ to $t+1$; the entries that
cross from one chain to the next are ignored); a `scanalg.kit.Segments` says where each
chain starts and ends. A single chain is the batch of one. These functions take validated
arrays; `scanalg.crf` and `scanalg.hmm` check their arguments and call them.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._methods import AbstractScanMethod, Parallel, as_method
from .._numerics import fast_or_exact, finite_or_zero, inverse_cdf, inverse_cdf_rows
from .._scan import scan
from .._segments import Segments
from ..monoids import FiniteFunction, Segmented
from ._base import AbstractSemiring
from ._instances import Log
from ._matmul import ChainMessages

# ------------------------------------------------------------------------------ layout


def segment_sums(x: Float[Array, " N"], layout: Segments) -> Float[Array, " B"]:
    """The sum of `x` over each chain (`Segments.sum`, by a tree: accurate in float32 at
    any length)."""
    return layout.sum(x, method=Parallel(algorithm="associative_scan"))


# ------------------------------------------------------------------------ forward pass


class ChainForward(NamedTuple):
    r"""The forward pass of a chain over a semiring.

    **Fields:**

    - `messages`: the normalised forward messages $\hat\alpha_t$, shape
      `(N, K, *value_shape)`: $\alpha_t = \hat\alpha_t \otimes
      \mathrm{from\_scores}(c_{\le t})$ with $c_{\le t}$ the sum of the shifts of $t$'s
      chain up to $t$.
    - `shifts`: the per-step shifts $c_t$, shape `(N,)` (constants for
      differentiation).
    - `pointers`: for `Max` and `KMax` with `pointers=True`, shape `(N-1, K, k)`: where
      each of the $k$ best of $\alpha_{t+1}[j]$ comes from, as $i k + r$ (state $i$,
      rank $r$ at step $t$); else `None`.
    """

    messages: Array
    shifts: Float[Array, " N"]
    pointers: Int[Array, "N1 K k"] | None


def _inputs(restart, unaries, potentials):
    """Per-step inputs of `ChainMessages`, and the monoid's fixed potentials."""
    if potentials.ndim == 2:
        return (restart, unaries), potentials
    return (restart, unaries, potentials), None


def _scan_chain(semiring, unaries, potentials, layout, init, method, kind, fast=True):
    r"""`scan` of `ChainMessages` over steps $1..N-1$ from the normalised `init`,
    exclusive, reading out per step (from the previous normalised message):
    `kind="totals"`: the total $v_t = \bigoplus_j \alpha_t[j]$; `"messages"`: the
    message before the unary, $\hat\alpha_{t-1} \otimes \psi$ (or $\bar 1$ at a
    restart); `"pointers"`: that message and the back-pointers (`argplus`).

    **Fast path** (a semiring with a `linear_form`, i.e. `Log` or `Entropy`; fixed
    potentials; a method that only acts, such as `Sequential`): when every column of
    $E_{ij} = e^{\psi_{ij} - m_j}$ ($m_j = \max_i \psi_{ij}$) has all entries at
    least $K \cdot \text{tiny} / \varepsilon$ (no $-\infty$, and a spread below about
    69 nats in float32) and every step has a finite unary, the chain runs in
    probability space instead, in the linear form (`Std` for `Log`, as an HMM filter
    does): matrix-vector products and $K$ exponentials per step instead of $K^2$
    exponentials. It is exact to rounding then: every column sum
    $\sum_i p_i E_{ij} \ge \min_i E_{ij}$ for a distribution $p$, so what underflows
    (states far less likely than the best) changes no sum by more than $2\varepsilon$
    relatively. The choice is a `lax.cond` around the scan.
    """
    xs, fixed = _inputs(layout.starts[1:], unaries[1:], potentials)

    def run(semiring, xs, init, fixed, fast):
        monoid = ChainMessages(semiring, fixed, fast=fast)

        def readout(state, x):
            if kind == "pointers":
                # The same candidates as `vecmat_scores` (XLA merges them in a loop body).
                return semiring.argplus(monoid.candidates(state, x), 0)
            moved = monoid.message(state, x)
            if kind == "totals":
                return semiring.total(semiring.times_scores(moved, x[1]))
            return moved

        return scan(monoid, xs, init=init, exclusive=True, readout=readout, method=method)

    def exact():
        return run(semiring, xs, init, fixed, False)

    resolved = as_method(method).resolve(ChainMessages(semiring, fixed), xs, init)
    linear = semiring.linear_form()
    if not fast or linear is None or fixed is None or resolved.combines_with_init:
        return exact()
    k = fixed.shape[0]
    info = jnp.finfo(fixed.dtype)
    log_floor = float(np.log(k * float(info.tiny) / float(info.eps)))
    restart = layout.starts[1:]
    top = jax.lax.stop_gradient(finite_or_zero(jnp.max(fixed, axis=0)))
    shifted = fixed - top[None, :]
    lifted = jnp.where(restart[:, None], unaries[1:], unaries[1:] + top[None, :])
    live = jnp.any(lifted > -jnp.inf, axis=1)
    dense = jax.lax.stop_gradient(jnp.all(shifted >= log_floor) & jnp.all(live))

    def probability_space():
        # Shifted into range: E in [floor, 1], each step's unaries at most zero with a
        # zero entry (clamped so that this branch is finite for any input, e.g. when
        # both branches run under `vmap`; it is taken only when clamping changes
        # nothing).
        shift = jax.lax.stop_gradient(finite_or_zero(jnp.max(lifted, axis=1)))
        weights = jnp.where(live[:, None], lifted - shift[:, None], 0)
        linear_xs = (restart, weights)
        init_weights = semiring.to_linear(init)
        out = run(linear, linear_xs, init_weights, jnp.maximum(shifted, log_floor), True)
        if kind == "totals":
            return semiring.from_linear(out, shift)
        return semiring.from_linear(out, jnp.where(restart[:, None], 0, top[None, :]))

    return fast_or_exact(dense, probability_space, exact)


def chain_forward(
    semiring: AbstractSemiring,
    unaries: Float[Array, "N K"],
    potentials: Float[Array, "N1 K K"] | Float[Array, "K K"],
    layout: Segments,
    method: str | AbstractScanMethod,
    pointers: bool = False,
    fast: bool = True,
) -> ChainForward:
    r"""The normalised forward messages of every chain of a packed batch: one scan of
    `ChainMessages` with an initial state, reading out each step's message.

    Each step's shift is that of the message computed from the previous normalised
    message (the same for every scan method, as the normal form is canonical), so
    the shifts add up to the chain's scale exactly.

    **Arguments:**

    - `semiring`: the semiring.
    - `unaries`, `potentials`: the scores (see the module docstring).
    - `layout`: `scanalg.kit.Segments(lengths, N)`.
    - `method`: the scan method.
    - `pointers`: also return back-pointers (`Max` and `KMax` only).
    - `fast`: allow the probability-space path (see below); `False` always runs in
      log space (for comparisons).

    With fixed potentials, a semiring with a `linear_form` (`Log`, `Entropy`) and a
    method that only acts (`Sequential`), the chain runs in probability space, in the
    linear form (for `Log`, `Std`, as an HMM filter does: a matrix-vector product and
    $K$ exponentials per step instead of $K^2$ exponentials), when that is exact to
    rounding: every column of $E_{ij} = e^{\psi_{ij} - m_j}$
    ($m_j = \max_i \psi_{ij}$) has all entries at least $K \cdot \text{tiny} /
    \varepsilon$ (no $-\infty$, a spread below about 69 nats in float32) and every
    step has a finite unary. Then every column sum $\sum_i p_i E_{ij} \ge
    \min_i E_{ij}$ for a distribution $p$, so what underflows (states far less likely
    than the best) changes no sum by more than $2\varepsilon$ relatively. Otherwise
    it runs in log space (a `lax.cond` around the scan).

    **Returns:**

    A `ChainForward`.
    """
    n, k = unaries.shape
    first, first_shift = semiring.normalise(semiring.from_scores(unaries[0]))
    if n == 1:
        none = jnp.zeros((0, k, getattr(semiring, "num_best", 1)), jnp.int32)
        return ChainForward(first[None], first_shift[None], none if pointers else None)

    kind = "pointers" if pointers else "messages"
    out = _scan_chain(semiring, unaries, potentials, layout, first, method, kind, fast)
    found = None
    if pointers:
        out, found = out
        one = semiring.one(out.shape[1:2], out.dtype)[None]
        out = jnp.where(layout.starts[1:].reshape(-1, *(1,) * (out.ndim - 1)), one, out)
    moved = jax.vmap(semiring.times_scores)(out, unaries[1:])
    rest, shifts = jax.vmap(semiring.normalise)(moved)
    messages = jnp.concatenate([first[None], rest])
    return ChainForward(messages, jnp.concatenate([first_shift[None], shifts]), found)


def chain_sum(
    semiring: AbstractSemiring,
    unaries: Float[Array, "N K"],
    potentials: Float[Array, "N1 K K"] | Float[Array, "K K"],
    layout: Segments,
    method: str | AbstractScanMethod,
    fast: bool = True,
) -> Array:
    r"""The semiring sum over all paths of each chain,
    $\bigoplus_z \mathrm{from\_scores}(s(z))$.

    One forward scan that reads out, per step, only the total of the new message
    $v_t = \bigoplus_j \alpha_t[j]$ (computed from the previous normalised message,
    a scalar for `Log` and `Max`): its score is the step's shift $c_t$, and a chain's
    sum is $v_{\text{last}} \otimes \mathrm{from\_scores}(\sum_{t < \text{last}}
    c_t)$, the shifts summed by a tree.

    **Arguments:** as for `chain_forward` (including its probability-space path).

    **Returns:**

    One value per chain, shape `(B, *value_shape)`: e.g. $\log Z$ (`Log`), the best
    score (`Max`), the $k$ best scores (`KMax(k)`), $(\log Z, H)$ (`Entropy`).
    """
    n, _ = unaries.shape
    start = semiring.from_scores(unaries[0])
    first_total = semiring.total(start)[None]
    if n == 1:
        totals = first_total
    else:
        first = semiring.normalise(start)[0]
        rest = _scan_chain(semiring, unaries, potentials, layout, first, method, "totals", fast)
        totals = jnp.concatenate([first_total, rest])
    shifts = jax.lax.stop_gradient(finite_or_zero(semiring.log_scale(totals)))
    before_last = segment_sums(jnp.where(layout.ends, 0, shifts), layout)
    return semiring.times_scores(totals[layout.last], before_last)


# --------------------------------------------------------------------------- marginals


def _softmax_or_zero(x: Array, axes: tuple[int, ...]) -> Array:
    """`exp(x)` normalised over `axes`; an all-$-\\infty$ slice gives zeros."""
    top = jax.lax.stop_gradient(finite_or_zero(jnp.max(x, axis=axes, keepdims=True)))
    w = jnp.exp(x - top)
    total = jnp.sum(w, axis=axes, keepdims=True)
    return w / jnp.where(total > 0, total, 1)


class ChainMarginals(NamedTuple):
    r"""Marginal probabilities of a chain's distribution $p(z) \propto e^{s(z)}$.

    **Fields:**

    - `unary`: $p(z_t = k)$, shape `(T, K)`.
    - `pairwise`: $p(z_t = i, z_{t+1} = j)$, shape `(T-1, K, K)` for time-varying
      potentials (zero where a packed step crosses from one chain to the next), or
      summed over the steps, `(K, K)`, for fixed ones (the expected transition
      counts): in both cases the gradient of $\sum_b \log Z_b$ with respect to
      `potentials`.
    """

    unary: Float[Array, "T K"]
    pairwise: Float[Array, "T1 K K"] | Float[Array, "K K"]


def chain_marginals(
    unaries: Float[Array, "N K"],
    potentials: Float[Array, "N1 K K"] | Float[Array, "K K"],
    layout: Segments,
    method: str | AbstractScanMethod,
) -> ChainMarginals:
    r"""Unary and pairwise marginals by a forward and an explicit backward scan (`Log`).

    The backward messages $\beta_t = \psi_t \otimes (u_{t+1} \odot \beta_{t+1})$,
    $\beta_T = \bar 1$, are a reverse scan of `ChainMessages(Log(), reverse=True)` on
    the transposed potentials. Then $p(z_t = k) \propto \alpha_t[k] \beta_t[k]$ and
    $p(z_t = i, z_{t+1} = j) \propto \alpha_t[i] \psi_t[i, j] u_{t+1}[j]
    \beta_{t+1}[j]$, each normalised on its own (no partition function needed). A
    chain of probability zero ($\log Z = -\infty$) has zero marginals.

    **Arguments:** as for `chain_forward`, without the semiring.

    **Returns:**

    A `ChainMarginals`.
    """
    log = Log()
    n, k = unaries.shape
    alpha = chain_forward(log, unaries, potentials, layout, method).messages
    fixed = potentials.ndim == 2
    if n == 1:
        beta = jnp.zeros((1, k), unaries.dtype)
    else:
        flipped = jnp.swapaxes(potentials, -1, -2)
        xs, fixed_t = _inputs(layout.ends[:-1], unaries[:-1], flipped)
        monoid = ChainMessages(log, fixed_t, reverse=True)
        last = log.normalise(unaries[-1])[0]
        earlier = scan(
            monoid,
            xs,
            init=last,
            reverse=True,
            exclusive=True,
            readout=monoid.message,
            method=method,
        )
        beta = jnp.concatenate([earlier, jnp.zeros((1, k), unaries.dtype)])
    unary = _softmax_or_zero(alpha + beta, (1,))
    if n == 1:
        pairwise = jnp.zeros((k, k) if fixed else (0, k, k), unaries.dtype)
        return ChainMarginals(unary, pairwise)
    later = unaries[1:] + beta[1:]

    def pair(a, psi, b, crossing):
        joint = _softmax_or_zero(a[:, None] + psi + b[None, :], (0, 1))
        return jnp.where(crossing, 0, joint)

    crossing = layout.ends[:-1]
    if fixed:
        steps = jax.vmap(pair, in_axes=(0, None, 0, 0))(alpha[:-1], potentials, later, crossing)
        return ChainMarginals(unary, jnp.sum(steps, axis=0))
    return ChainMarginals(unary, jax.vmap(pair)(alpha[:-1], potentials, later, crossing))


# ------------------------------------------------------------------------ best paths


def backtrack(
    maps: Int[Array, "N S"],
    layout: Segments,
    starts: Int[Array, "B P"],
    method: str | AbstractScanMethod,
) -> Int[Array, "P N"]:
    r"""Follow maps back from each chain's last step: $x_t = f_t(x_{t+1})$.

    `maps[t]` maps an index at step $t+1$ to one at step $t$ (the identity at each
    chain's last step); `starts[b]` are the indices at chain $b$'s last step. The
    compositions $F_t = f_t \circ \cdots \circ f_{\mathrm{end}(t)}$ are a reverse
    scan of `Segmented(FiniteFunction(), boundary="end")` (integer: identical on every
    method), and $x_t = F_t(\text{start})$.

    **Returns:**

    The indices, shape `(P, N)`.
    """
    _, composed = scan(
        Segmented(FiniteFunction(check_range=False), boundary="end"),
        (layout.ends, maps),
        reverse=True,
        method=method,
    )
    return jnp.take_along_axis(composed, starts[layout.ids], axis=1).T


class ChainBest(NamedTuple):
    r"""The best paths of each chain.

    **Fields:**

    - `scores`: shape `(B, k)`, in decreasing order.
    - `paths`: shape `(k, N)`, packed like the inputs.
    """

    scores: Float[Array, "B k"]
    paths: Int[Array, "k N"]


def chain_best(
    semiring: AbstractSemiring,
    unaries: Float[Array, "N K"],
    potentials: Float[Array, "N1 K K"] | Float[Array, "K K"],
    layout: Segments,
    method: str | AbstractScanMethod,
) -> ChainBest:
    r"""The best path (`Max`) or the $k$ best paths (`KMax(k)`) of each chain, by
    back-pointers.

    The forward scan also reads out, for every step, where each of the $k$ best
    scores of each state comes from (`argplus`); these pointers are maps on the
    (state, rank) pairs, followed back by `backtrack`. Ties: among equal scores the
    path that is smaller in reverse lexicographic order ($z_T$ first, then $z_{T-1}$,
    ...) comes first. When a chain has fewer than $k$ paths the extra scores are
    $-\infty$ (their paths are valid state indices, not distinct paths).

    **Arguments:** as for `chain_forward`; `semiring` is `Max()` or `KMax(k)`.

    **Returns:**

    A `ChainBest`.
    """
    n, k = unaries.shape
    best = semiring.num_best
    fwd = chain_forward(semiring, unaries, potentials, layout, method, pointers=True)
    values, slots = semiring.argplus(fwd.messages[layout.last], axis=1)
    scores = semiring.ranked(values) + segment_sums(fwd.shifts, layout)[:, None]
    identity = jnp.arange(k * best, dtype=jnp.int32)
    maps = fwd.pointers.reshape(n - 1, k * best)
    maps = jnp.where(layout.starts[1:, None], identity[None], maps)
    maps = jnp.concatenate([maps, identity[None]])
    return ChainBest(scores, backtrack(maps, layout, slots, method) // best)


# -------------------------------------------------------------------------- sampling


def chain_sample(
    key: PRNGKeyArray,
    unaries: Float[Array, "N K"],
    potentials: Float[Array, "N1 K K"] | Float[Array, "K K"],
    layout: Segments,
    num_samples: int,
    method: str | AbstractScanMethod,
) -> Int[Array, "num_samples N"]:
    r"""Exact samples from $p(z) \propto e^{s(z)}$ of every chain: forward filtering,
    backward sampling by composition.

    With the normalised forward messages $\hat\alpha_t$ (`Log`) and one uniform $u_t$
    per step, the map $f_t(j) = F_{tj}^{-1}(u_t)$, $F_{tj}$ the CDF of
    $p(z_t = i \mid z_{t+1} = j) \propto e^{\hat\alpha_t[i] + \psi_t[i, j]}$, draws
    $z_t$ given $z_{t+1}$; the last state of a chain is drawn from
    $\propto e^{\hat\alpha_T}$ with its step's uniform, and `backtrack` composes the
    maps. The weights are shifted by their column's largest, so the one of largest
    weight is exactly one and nothing underflows. The uniforms come from `key`
    alone, so every scan method returns the same paths (up to ties at rounding
    level). A chain of probability zero gets valid but meaningless indices.

    **Returns:**

    The paths, shape `(num_samples, N)`.
    """
    n, k = unaries.shape
    alpha = chain_forward(Log(), unaries, potentials, layout, method).messages
    u = jax.random.uniform(key, (num_samples, n), unaries.dtype)
    ends = alpha[layout.last]
    end_weights = jnp.exp(ends - finite_or_zero(jnp.max(ends, axis=1, keepdims=True)))
    fixed = potentials.ndim == 2
    steps = potentials[None] if fixed else potentials

    def row_scores(i):
        psi = potentials[i][None, :] if fixed else potentials[:, i, :]
        return alpha[:-1, i, None] + psi

    if n > 1:
        # Column maxima over the candidates i (the largest weight is one), and totals.
        scores = alpha[:-1, :, None] + steps
        top = finite_or_zero(jnp.max(scores, axis=1))
        total = jnp.sum(jnp.exp(scores - top[:, None, :]), axis=1)
    identity = jnp.arange(k, dtype=jnp.int32)

    def one(v):
        last = inverse_cdf(end_weights[:, :, None], v[layout.last])[:, 0]
        if n == 1:
            return last[None]
        maps = inverse_cdf_rows(lambda i: jnp.exp(row_scores(i) - top), k, total, v[:-1])
        maps = jnp.where(layout.starts[1:, None], identity[None], maps)
        maps = jnp.concatenate([maps, identity[None]])
        return backtrack(maps, layout, last[:, None], method)[0]

    return jax.vmap(one)(u)
