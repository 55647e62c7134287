r"""The built-in semirings: `Log`, `Std`, `Max`, `KMax` and `Entropy`.

All of them are commutative and graded by real scores (see `AbstractSemiring`); all
accept $-\infty$ scores (structural zeros) and never produce a NaN from them, in
values or in gradients (logarithms and divisions are guarded with double `where`s).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._numerics import finite_or_zero, safe_log
from ._base import AbstractSemiring, batch_axis


def _logsumexp(x: Array, axis: int) -> Array:
    """`log(sum(exp(x)))` over `axis`: $-\\infty$ (not NaN) for an all-$-\\infty$ slice
    or an empty axis, with NaN-free gradients."""
    top = jnp.max(x, axis=axis, keepdims=True, initial=-jnp.inf)
    shift = jax.lax.stop_gradient(finite_or_zero(top))
    total = jnp.sum(jnp.exp(x - shift), axis=axis)
    return safe_log(total) + jnp.squeeze(shift, axis)


class Log(AbstractSemiring):
    r"""The log semiring: $a \oplus b = \log(e^a + e^b)$, $a \otimes b = a + b$,
    $\bar 0 = -\infty$, $\bar 1 = 0$.

    Values are log-weights (scalars). The sum over the paths of a chain is its
    log-partition function $\log Z$, and the gradient of $\log Z$ with respect to the
    scores is the vector of marginal probabilities.
    """

    @property
    def value_shape(self) -> tuple[int, ...]:
        return ()

    def zero(self, shape, dtype):
        return jnp.full(shape, -jnp.inf, dtype)

    def one(self, shape, dtype):
        return jnp.zeros(shape, dtype)

    def plus(self, x, axis):
        return _logsumexp(x, batch_axis(self, x, axis))

    def times(self, a, b):
        return a + b

    def from_scores(self, s):
        return s

    def log_scale(self, x):
        return x

    def times_scores(self, x, s):
        return x + s

    def linear_form(self) -> "Std":
        """`Std`: the same sums as weights."""
        return Std()

    def to_linear(self, x):
        return jnp.exp(x)

    def from_linear(self, y, offset):
        return safe_log(y) + offset


class Std(AbstractSemiring):
    r"""The standard (probability) semiring: $a \oplus b = a + b$,
    $a \otimes b = a b$, $\bar 0 = 0$, $\bar 1 = 1$ on nonnegative reals.

    `from_scores` is $e^s$: the sum over the paths of a chain is its partition function
    $Z$ itself (not its logarithm), which overflows or underflows for long chains
    where `Log` does not.
    """

    @property
    def value_shape(self) -> tuple[int, ...]:
        return ()

    def zero(self, shape, dtype):
        return jnp.zeros(shape, dtype)

    def one(self, shape, dtype):
        return jnp.ones(shape, dtype)

    def plus(self, x, axis):
        return jnp.sum(x, axis=batch_axis(self, x, axis))

    def times(self, a, b):
        return a * b

    def from_scores(self, s):
        return jnp.exp(s)

    def log_scale(self, x):
        return safe_log(x)

    def matmul(self, a, b):
        return a @ b

    def vecmat(self, v, a):
        return v @ a

    def prepare_scores(self, w):
        r"""$E = e^{w}$ (for scores $w \le 0$, so that nothing overflows)."""
        return jnp.exp(w)

    def vecmat_prepared(self, v, prepared):
        r"""$\sum_i v_i E_{ij}$ (one multiply-add per entry, no exponential)."""
        return jnp.sum(v[:, None] * prepared, axis=0)

    def normalise_positive(self, x):
        """`x` divided by its total (one reduction and one division per entry; the
        total is a constant for differentiation, as in `normalise`)."""
        return x / jax.lax.stop_gradient(self.total(x))


class Max(AbstractSemiring):
    r"""The max-plus (tropical) semiring: $a \oplus b = \max(a, b)$,
    $a \otimes b = a + b$, $\bar 0 = -\infty$, $\bar 1 = 0$.

    The sum over the paths of a chain is the best path's score (Viterbi). The best
    path follows from back-pointers (`argplus`), or from the gradient of the best
    score with respect to the unary scores, which is the indicator of the best path
    when it is unique.
    """

    @property
    def value_shape(self) -> tuple[int, ...]:
        return ()

    @property
    def num_best(self) -> int:
        """How many best values a value holds: one."""
        return 1

    def zero(self, shape, dtype):
        return jnp.full(shape, -jnp.inf, dtype)

    def one(self, shape, dtype):
        return jnp.zeros(shape, dtype)

    def plus(self, x, axis):
        return jnp.max(x, axis=batch_axis(self, x, axis), initial=-jnp.inf)

    def argplus(self, x: Array, axis: int) -> tuple[Array, Int[Array, "... 1"]]:
        """`plus` and where the maximum is: `(values, indices)`, `indices` with a
        trailing axis of length one (ties go to the lowest index)."""
        index = jnp.argmax(x, axis=batch_axis(self, x, axis)).astype(jnp.int32)
        return self.plus(x, axis), index[..., None]

    def ranked(self, x: Array) -> Array:
        """The values as lists of best scores: shape `(..., 1)`."""
        return x[..., None]

    def times(self, a, b):
        return a + b

    def from_scores(self, s):
        return s

    def log_scale(self, x):
        return x

    def times_scores(self, x, s):
        return x + s


_MERGE_UP_TO = 8
_FOLD_UP_TO = 8


class KMax(AbstractSemiring):
    r"""The k-best semiring: values are the $k$ best scores, sorted in decreasing
    order, $a = (a_1 \ge \cdots \ge a_k)$ (missing ones $-\infty$).

    $$a \oplus b = \operatorname{top}_k(a_1, \dots, a_k, b_1, \dots, b_k), \qquad
      a \otimes b = \operatorname{top}_k\{a_r + b_s : r, s \le k\},$$

    $\bar 0 = (-\infty, \dots, -\infty)$, $\bar 1 = (0, -\infty, \dots, -\infty)$.
    The sum over the paths of a chain is the list of its $k$ best path scores (with
    $-\infty$ entries when there are fewer than $k$ paths); the paths follow from
    back-pointers (`argplus`). `KMax(1)` is `Max` with values of shape `(1,)`.

    **Ties.** Candidates are ordered by score, then by position: `plus` over an axis
    prefers the lower index along it, then the better rank; `times` prefers the
    better rank of `a`. (`jax.lax.top_k` keeps the lower index first.)

    **Arguments:**

    - `k`: how many best scores to keep, an int $\ge 1$.
    """

    k: int = eqx.field(static=True)

    def __check_init__(self):
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"KMax(k=...) must be an int >= 1, got {self.k!r}.")

    @property
    def value_shape(self) -> tuple[int, ...]:
        return (self.k,)

    @property
    def num_best(self) -> int:
        """How many best values a value holds: `k`."""
        return self.k

    def zero(self, shape, dtype):
        return jnp.full((*shape, self.k), -jnp.inf, dtype)

    def one(self, shape, dtype):
        first = jnp.arange(self.k) == 0
        return jnp.broadcast_to(jnp.where(first, 0, -jnp.inf).astype(dtype), (*shape, self.k))

    def _top(self, candidates: Array) -> tuple[Array, Array]:
        """The `k` largest along the last axis (padded with $-\\infty$), and where."""
        n = candidates.shape[-1]
        if n < self.k:
            pad = jnp.full((*candidates.shape[:-1], self.k - n), -jnp.inf, candidates.dtype)
            candidates = jnp.concatenate([candidates, pad], axis=-1)
        values, index = jax.lax.top_k(candidates, self.k)
        return values, index.astype(jnp.int32)

    def argplus(self, x: Array, axis: int) -> tuple[Array, Int[Array, "... k"]]:
        r"""`plus` and where each of the $k$ best comes from: `(values, indices)` with
        `indices` into the flattened (position along `axis`, rank) pairs,
        $i k + r$."""
        axis = batch_axis(self, x, axis)
        moved = jnp.moveaxis(x, axis, -2)
        return self._top(moved.reshape(*moved.shape[:-2], moved.shape[-2] * self.k))

    def _merge(self, a: Array, b: Array) -> Array:
        r"""The $k$ best of two sorted lists, by elementwise min and max only:
        $c_r = \max(a_r, b_r, \max_{1 \le s \le r} \min(a_{s-1}, b_{r-s}))$ (the $r$-th
        largest of the union; no sort, no data-dependent indexing)."""
        out = []
        for r in range(self.k):
            best = jnp.maximum(a[..., r], b[..., r])
            for s in range(1, r + 1):
                best = jnp.maximum(best, jnp.minimum(a[..., s - 1], b[..., r - s]))
            out.append(best)
        return jnp.stack(out, axis=-1)

    def plus(self, x, axis):
        # Up to k = 8: merges of the sorted lists along `axis` (much faster than
        # `top_k` on CPU; the same values, whatever the order of ties); a merge is
        # O(k^2) elementwise operations, so `top_k` beyond. A tree of pairwise merges
        # down to 8 lists, then one merge after another: XLA fuses such a short chain
        # into a few kernels (a step of a chain over a few states is then a few
        # kernels), while a long one would be split into many or recompute inputs.
        if self.k > _MERGE_UP_TO:
            return self.argplus(x, axis)[0]
        x = jnp.moveaxis(x, batch_axis(self, x, axis), 0)
        if x.shape[0] == 0:
            return self.zero(x.shape[1:-1], x.dtype)
        while x.shape[0] > _FOLD_UP_TO:
            if x.shape[0] % 2:
                x = jnp.concatenate([x, self.zero((1, *x.shape[1:-1]), x.dtype)])
            x = self._merge(x[0::2], x[1::2])
        merged = x[0]
        for i in range(1, x.shape[0]):
            merged = self._merge(merged, x[i])
        return merged

    def ranked(self, x: Array) -> Array:
        """The values as lists of best scores: shape `(..., k)` (themselves)."""
        return x

    def times(self, a, b):
        # The k sorted lists a_r + b, merged.
        return self.plus(jnp.moveaxis(a[..., :, None] + b[..., None, :], -2, 0), 0)

    def from_scores(self, s):
        rest = jnp.full((*jnp.shape(s), self.k - 1), -jnp.inf, jnp.result_type(s))
        return jnp.concatenate([jnp.asarray(s)[..., None], rest], axis=-1)

    def log_scale(self, x):
        return x[..., 0]

    def times_scores(self, x, s):
        return x + jnp.asarray(s)[..., None]


class Entropy(AbstractSemiring):
    r"""The entropy (expectation) semiring on pairs $(a, H)$: a set of weighted paths
    with total log-weight $a = \log \sum_i w_i$ and the entropy $H$ of the normalised
    weights $w_i / e^a$.

    $$(a_1, H_1) \oplus (a_2, H_2) = \big(a,\; p_1 H_1 + p_2 H_2 - p_1 \log p_1
      - p_2 \log p_2\big), \quad a = \log(e^{a_1} + e^{a_2}),\ p_i = e^{a_i - a},$$
    $$(a_1, H_1) \otimes (a_2, H_2) = (a_1 + a_2,\; H_1 + H_2),$$

    $\bar 0 = (-\infty, 0)$, $\bar 1 = (0, 0)$; a value with $a = -\infty$ has $H = 0$.
    It is the expectation semiring of $(Z, \sum_i w_i \log w_i)$ written in log space,
    so it is stable for long chains. The sum over the paths of a chain is
    $(\log Z, H)$, $H$ the entropy of the chain's distribution over paths.

    Values have shape `(2,)`: `value[..., 0]` is $a$, `value[..., 1]` is $H$.
    """

    @property
    def value_shape(self) -> tuple[int, ...]:
        return (2,)

    def zero(self, shape, dtype):
        return jnp.stack([jnp.full(shape, -jnp.inf, dtype), jnp.zeros(shape, dtype)], axis=-1)

    def one(self, shape, dtype):
        return jnp.zeros((*shape, 2), dtype)

    def plus(self, x, axis):
        axis = batch_axis(self, x, axis)
        a, h = x[..., 0], x[..., 1]
        total = _logsumexp(a, axis)
        live = a > -jnp.inf
        log_w = jnp.where(live, a - jnp.expand_dims(total, axis), 0)
        w = jnp.where(live, jnp.exp(log_w), 0)
        entropy = jnp.sum(w * (h - log_w), axis=axis)
        return jnp.stack([total, entropy], axis=-1)

    def times(self, a, b):
        score = a[..., 0] + b[..., 0]
        entropy = jnp.where(score > -jnp.inf, a[..., 1] + b[..., 1], 0)
        return jnp.stack([score, entropy], axis=-1)

    def from_scores(self, s):
        s = jnp.asarray(s)
        return jnp.stack([s, jnp.zeros_like(s)], axis=-1)

    def log_scale(self, x):
        return x[..., 0]

    def times_scores(self, x, s):
        score = x[..., 0] + s
        entropy = jnp.where(score > -jnp.inf, x[..., 1], 0)
        return jnp.stack([score, entropy], axis=-1)

    def vecmat_scores(self, v, w):
        r"""$v \otimes e^{w}$ for a score matrix $w$ directly: with
        $s_{ij} = a_i + w_{ij}$, $a'_j = \log\sum_i e^{s_{ij}}$ and
        $H'_j = \sum_i e^{s_{ij} - a'_j} (H_i - s_{ij}) + a'_j$ (one exponential per
        entry, as for `Log`)."""
        a, h = v[:, 0], v[:, 1]
        s = a[:, None] + w
        top = jax.lax.stop_gradient(finite_or_zero(jnp.max(s, axis=0)))
        centred = s - top[None, :]
        e = jnp.exp(centred)
        total = jnp.sum(e, axis=0)
        log_total = safe_log(total)
        # H'_j = sum_i e_ij (h_i - (s_ij - top_j)) / total_j + log(total_j), from the
        # centred scores (no cancellation of large numbers).
        spread = jnp.sum(e * jnp.where(s > -jnp.inf, h[:, None] - centred, 0), axis=0)
        alive = total > 0
        entropy = jnp.where(alive, spread / jnp.where(alive, total, 1) + log_total, 0)
        return jnp.stack([log_total + top, entropy], axis=-1)

    def entropy(self, x: Array) -> Float[Array, "..."]:
        """The entropy part $H$ of values."""
        return x[..., 1]

    def linear_form(self) -> "_LinearEntropy":
        r"""The expectation semiring of pairs $(W, R) = (e^a, e^a (H - a))$: a set
        of paths by its total weight and $-\sum_i w_i \log w_i$."""
        return _LinearEntropy()

    def to_linear(self, x):
        a, h = x[..., 0], x[..., 1]
        w = jnp.exp(a)
        live = a > -jnp.inf
        return jnp.stack([w, jnp.where(live, w * (h - jnp.where(live, a, 0)), 0)], axis=-1)

    def from_linear(self, y, offset):
        w, r = y[..., 0], y[..., 1]
        live = w > 0
        log_w = safe_log(w)
        entropy = jnp.where(live, r / jnp.where(live, w, 1) + jnp.where(live, log_w, 0), 0)
        return jnp.stack([log_w + offset, entropy], axis=-1)


def _information(s: Array, w: Array) -> Array:
    r"""$-w \log w$ for $w = e^s$ (zero where $s = -\infty$), from the scores."""
    live = s > -jnp.inf
    return jnp.where(live, -jnp.where(live, s, 0) * w, 0)


class _LinearEntropy(AbstractSemiring):
    r"""`Entropy` in probability space: the expectation semiring on pairs
    $(W, R)$ of a total weight $W = \sum_i w_i$ and $R = -\sum_i w_i \log w_i$,

    $$(W_1, R_1) \oplus (W_2, R_2) = (W_1 + W_2, R_1 + R_2), \quad
      (W_1, R_1) \otimes (W_2, R_2) = (W_1 W_2, R_1 W_2 + W_1 R_2),$$

    $\bar 0 = (0, 0)$, $\bar 1 = (1, 0)$; the entropy of the normalised weights is
    $R / W + \log W$. (`Entropy.linear_form`; chains use it where it is exact.)
    """

    @property
    def value_shape(self) -> tuple[int, ...]:
        return (2,)

    def zero(self, shape, dtype):
        return jnp.zeros((*shape, 2), dtype)

    def one(self, shape, dtype):
        return jnp.stack([jnp.ones(shape, dtype), jnp.zeros(shape, dtype)], axis=-1)

    def plus(self, x, axis):
        return jnp.sum(x, axis=batch_axis(self, x, axis))

    def times(self, a, b):
        w = a[..., 0] * b[..., 0]
        return jnp.stack([w, a[..., 1] * b[..., 0] + a[..., 0] * b[..., 1]], axis=-1)

    def from_scores(self, s):
        s = jnp.asarray(s)
        w = jnp.exp(s)
        return jnp.stack([w, _information(s, w)], axis=-1)

    def log_scale(self, x):
        return safe_log(x[..., 0])

    def times_scores(self, x, s):
        e = jnp.exp(s)
        return jnp.stack([x[..., 0] * e, x[..., 1] * e + x[..., 0] * _information(s, e)], -1)

    def prepare_scores(self, w):
        r"""$E = e^{w}$ and $-E \log E$ (for scores $w \le 0$)."""
        e = jnp.exp(w)
        return e, _information(w, e)

    def vecmat_prepared(self, v, prepared):
        r"""$W'_j = \sum_i W_i E_{ij}$, $R'_j = \sum_i R_i E_{ij} + W_i
        (-E_{ij} \log E_{ij})$: multiply-adds only."""
        e, info = prepared
        w, r = v[:, 0, None], v[:, 1, None]
        return jnp.stack([jnp.sum(w * e, axis=0), jnp.sum(r * e + w * info, axis=0)], -1)

    def normalise_positive(self, x):
        r"""Weights divided by their total $c$ (a constant for differentiation):
        $(W / c, R / c + (W / c) \log c)$."""
        c = jax.lax.stop_gradient(jnp.sum(x[..., 0]))
        w = x[..., 0] / c
        return jnp.stack([w, x[..., 1] / c + w * jnp.log(c)], axis=-1)
