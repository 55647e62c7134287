r"""Hidden Markov model monoids: forward filtering, backward smoothing, max-plus (Viterbi).

All three work on $K \times K$ matrices kept in a *row-scaled normal form*: an element
is a pair $(M, r)$ standing for the matrix $\operatorname{diag}(e^{r}) M$ (sum-product)
or $r_i + W_{ij}$ (max-plus). The products of many HMM steps have rows whose scales
differ by hundreds of orders of magnitude (a row is the probability of the future
given one starting state); keeping each row's scale in log space makes the products
immune to underflow, with no clamping. Overall scale is dropped (the monoids are
*projective*): the HMM functions recover the marginal log-likelihood from per-step
normalisers instead, summed pairwise.

Structural zeros and $-\infty$ log-scales are legal everywhere. A row whose every
entry is zero has log-scale $-\infty$; a state that is the zero vector stays zero
(it is the absorbing "impossible" state). No operation here produces a NaN from such
input, and all gradients are NaN-free (log and exp are guarded with double `where`s).
"""

import abc
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ..._monoid import AbstractMonoid, ActionDirection
from ..._numerics import (
    compensated_sum,
    finite_or_zero,
    log_compensated,
    logsumexp,
    normalise,
    reduce_states,
    safe_log,
)


class ScaledMatrix(NamedTuple):
    r"""A nonnegative matrix with separate row log-scales: $\operatorname{diag}(e^r) M$.

    **Fields:**

    - `matrix`: $M$, nonnegative, shape `(K, K)`.
    - `log_scale`: $r$, shape `(K,)`, entries finite or $-\infty$.
    """

    matrix: Float[Array, "*t K K"]
    log_scale: Float[Array, "*t K"]


class Evidence(NamedTuple):
    r"""One step's log-likelihoods $\ell$, also exponentiated against their maximum.

    An input of `HMMForward` (it lifts to the same element as $\ell$ itself) for which
    `act_input` conditions with one multiplication per state: the exponentials
    $e^{\ell - \max\ell}$ are computed for all steps at once, outside any loop. This
    is exact whenever the state has positive weight on the most likely state (always
    the case when the transition matrix has no zero entries; see `act_input`). Build
    it with `Evidence.of`.

    **Fields:**

    - `log_likelihood`: $\ell$, shape `(K,)` (entries finite or $-\infty$).
    - `scaled`: $e^{\min(\ell - m, 0)}$, shape `(K,)`.
    - `shift`: $m = \max_k \ell_k$ (or the maximum over a support, see `Evidence.of`;
      zero if that is not finite), shape `()`.
    """

    log_likelihood: Float[Array, "*t K"]
    scaled: Float[Array, "*t K"]
    shift: Float[Array, "*t"]

    @classmethod
    def of(
        cls,
        log_likelihood: Float[Array, "t K"],
        support: Bool[Array, " K"] | None = None,
        rows: Int[Array, " r"] | None = None,
    ) -> "Evidence":
        """The evidence for log-likelihoods of shape `(T, K)`.

        With `support` (where the state it will act on may be positive) and `rows`
        (indices along time), the shift of those rows is the largest log-likelihood on
        the support: for the first step of each sequence, whose state is the initial
        distribution. `scaled` is capped at one, so it stays finite off the support
        (where the state is zero). (No mask on every row: it costs more than the
        exponentials.)
        """

        def largest(ll):
            return jax.lax.stop_gradient(finite_or_zero(reduce_states(jnp.maximum, ll)))

        shift = largest(log_likelihood)
        if support is not None:
            masked = jnp.where(support, log_likelihood[rows], -jnp.inf)
            shift = shift.at[rows].set(largest(masked))
        exponent = log_likelihood - shift[..., None]
        # (`where`, not `minimum`: at a tie `minimum` would halve the gradient)
        scaled = jnp.exp(jnp.where(exponent > 0, 0, exponent))
        return cls(log_likelihood, scaled, shift)


class LogMatrix(NamedTuple):
    r"""A max-plus matrix with separate row offsets: entries $r_i + W_{ij}$.

    **Fields:**

    - `matrix`: $W$, entries finite or $-\infty$, shape `(K, K)`.
    - `offset`: $r$, shape `(K,)`, entries finite or $-\infty$.
    """

    matrix: Float[Array, "*t K K"]
    offset: Float[Array, "*t K"]


# --------------------------------------------------------------------------------------
# Sum-product: forward filter and backward messages.
# --------------------------------------------------------------------------------------


def _scaled_matmul(earlier: ScaledMatrix, later: ScaledMatrix) -> ScaledMatrix:
    r"""Normal form of $\operatorname{diag}(e^{r_a}) M_a \operatorname{diag}(e^{r_b}) M_b$."""
    ma, ra = earlier
    mb, rb = later
    # Row i of the product is sum_j ma[i, j] e^{rb[j]} mb[j, :]; shift each row by its
    # largest term so that the biggest weight is exactly one (no underflow of a row).
    logs = safe_log(ma) + rb[None, :]
    shift = jax.lax.stop_gradient(finite_or_zero(jnp.max(logs, axis=-1)))
    weights = jnp.exp(jnp.where(ma > 0, logs - shift[:, None], -jnp.inf))
    product = weights @ mb
    rows = jnp.sum(product, axis=-1)
    matrix = product / jnp.where(rows > 0, rows, 1)[:, None]
    log_scale = ra + shift + safe_log(rows)
    log_scale = log_scale - jax.lax.stop_gradient(finite_or_zero(jnp.max(log_scale)))
    return ScaledMatrix(matrix, log_scale)


def _scaled_identity(like: ScaledMatrix) -> ScaledMatrix:
    k = like.matrix.shape[-1]
    dtype = like.matrix.dtype
    return ScaledMatrix(jnp.eye(k, dtype=dtype), jnp.zeros((k,), like.log_scale.dtype))


def condition(
    state: Float[Array, " K"], log_scale: Float[Array, " K"] | Evidence
) -> tuple[Float[Array, " K"], Float[Array, " K"], Float[Array, ""]]:
    r"""Condition a distribution $p$ on log-weights $r$ (one filtering update).

    Returns `(weights, posterior, shift)`: the weights $q = p \odot e^{r - m}$, the
    normalised $q / \lVert q \rVert_1$ (the zero vector if $q = 0$), and the shift $m$,
    so that $\log \sum_i p_i e^{r_i} = m + \log\lVert q \rVert_1$.

    For log-weights, $m$ is the largest $r_i$ on the support of $p$ (no weight
    overflows, and the largest term of $\sum_i q_i$ is $p_{i^*}$). For `Evidence`, $m$
    is the largest $r_i$ over all states and $e^{r - m}$ is precomputed: no exponential
    here, exact when $p$ has weight on the most likely state (see
    `HMMForward.act_input`).
    """
    if isinstance(log_scale, Evidence):
        weights = state * log_scale.scaled
        return weights, normalise(weights), log_scale.shift
    scaled, shift = _support_scaled(state, log_scale)
    weights = state * scaled
    return weights, normalise(weights), shift


def _support_scaled(state: Array, log_scale: Array) -> tuple[Array, Array]:
    r"""$(e^{r - m}, m)$ with $m$ the largest $r_i$ on the support of `state` (zero
    off the support)."""
    # (The lowest finite number, not -inf, for an empty support: one fused kernel
    # less in a loop step, and off-support entries are masked before the `exp`.)
    floor = jnp.finfo(log_scale.dtype).min
    top = jnp.max(jnp.where(state > 0, log_scale, floor))
    shift = jax.lax.stop_gradient(jnp.maximum(top, floor))  # -inf on the support
    return jnp.exp(jnp.where(state > 0, log_scale - shift, -jnp.inf)), shift


def predict(
    state: Float[Array, " K"], matrix: Float[Array, "K K"], lik: Float[Array, " K"] | Evidence
) -> Float[Array, " K"]:
    r"""One filtering step from the prediction $p$: condition on the step's
    likelihoods, then move by $M$, $p \mapsto M^\top q / \lVert M^\top q\rVert_1$.

    With `Evidence`, $q = p \odot e^{\ell - m}$ is moved as it is (no division before
    the product: one loop kernel less); with log-weights, $q$ is the normalised
    posterior (the support-shifted exact path). The zero vector stays zero.
    """
    weights, posterior, _ = condition(state, lik)
    moved = weights if isinstance(lik, Evidence) else posterior
    return normalise(matrix.T @ moved)  # (XLA:CPU fuses this form of the product)


class FilterReadout(NamedTuple):
    r"""What the filter reads out of a prediction $p$ (see `filter_readout`).

    **Fields:**

    - `filtered`: $q / \lVert q\rVert_1$ with $q = p \odot e^{\ell}$.
    - `log_normaliser`: $\log(q \cdot M\mathbf{1}) - \log(p \cdot \mathbf{1})$: the
      log-likelihood of the step, plus the log of the mass that moves on
      ($M\mathbf{1} = \mathbf{1}$ for a stochastic matrix).
    """

    filtered: Float[Array, " K"]
    log_normaliser: Float[Array, ""]


def filter_readout(
    state: Float[Array, " K"],
    row_sums: Float[Array, " K"],
    log_likelihood: Float[Array, " K"] | Evidence,
) -> FilterReadout:
    r"""The filtered distribution and log-normaliser of one step, from its prediction
    and the row sums $M\mathbf{1}$ of the step's matrix (ones for a step that moves
    nothing).

    The log-normaliser is computed without bias from rounding, as $m +
    \operatorname{log1p}(x)$ with $m$ the largest $\ell_i$ on the support of $p$ and

    $$x = \frac{\sum_i p_i \bigl(d_i (M\mathbf{1})_i + (M\mathbf{1})_i - 1\bigr)}
      {\sum_i p_i}, \qquad d_i = e^{\ell_i - m} - 1$$

    ($e^{\ell_i - m} \le 1$ is correctly rounded, and subtracting one from it is
    exact): no sum is rounded near one. A sum near one rounds on an uneven grid (the
    float spacing just above one is twice that just below), which biases $\log$ of it
    by a fraction of an ulp at every step: over a million float32 steps, $10^{-2}$.
    For $x < -1/2$ it is the log of the quotient $\sum_i q_i (M\mathbf{1})_i /
    \sum_i p_i$ itself (which has no such bias there).

    With `Evidence` its precomputed $e^{\ell - m}$ and $m$ are used (no exponential):
    the same numbers when $p$ has full support, or at a first step the support of the
    initial distribution (see `Evidence.of`), which is how `scanalg.hmm` uses it.
    The sums over the states use `reduce_states` (cheap under `vmap` too).
    """
    if isinstance(log_likelihood, Evidence):
        scaled, shift = log_likelihood.scaled, log_likelihood.shift
    else:
        scaled, shift = _support_scaled(state, log_likelihood)
    weights = state * scaled
    total = reduce_states(jnp.add, weights)
    filtered = weights / jnp.where(total > 0, total, 1)[..., None]
    # The mass is not differentiated: one in exact arithmetic after the first step, and
    # at the first step the gradient is the path sum's, for any nonnegative initial
    # weights. `state - sg(state)` (zero) gives the sum the gradient of q . M1.
    mass = jax.lax.stop_gradient(reduce_states(jnp.add, state))
    moved = state * ((scaled - 1) * row_sums + (row_sums - 1)) + (
        state - jax.lax.stop_gradient(state)
    )
    divisor = jnp.where(mass > 0, mass, 1)
    ratio = reduce_states(jnp.add, moved) / divisor
    # Far from one (below 1/2) the quotient itself has no such bias, and `1 + ratio`
    # would lose its digits (all of them for a likely state of tiny predicted mass).
    near_one = ratio > -0.5
    quotient = reduce_states(jnp.add, weights * row_sums) / divisor
    log_ratio = jnp.where(near_one, jnp.log1p(jnp.where(near_one, ratio, 0)), safe_log(quotient))
    log_normaliser = jnp.where(mass > 0, shift + log_ratio, -jnp.inf)
    return FilterReadout(filtered, log_normaliser)


class LogFilterReadout(NamedTuple):
    r"""What the exact filter reads out of a log-prediction $\log p$ (see
    `log_filter_readout`).

    **Fields:**

    - `filtered`, `log_normaliser`: as in `FilterReadout`.
    - `predicted`: $p / \lVert p \rVert_1$.
    - `log_filtered`: $\log$ of `filtered`, exact where `filtered` underflows.
    """

    filtered: Float[Array, " K"]
    predicted: Float[Array, " K"]
    log_normaliser: Float[Array, ""]
    log_filtered: Float[Array, " K"]


def log_filter_readout(
    log_state: Float[Array, " K"], row_sums: Float[Array, " K"], log_likelihood: Float[Array, " K"]
) -> LogFilterReadout:
    r"""`filter_readout` from the logarithm of the prediction (of `HMMLogForward`): the
    same quantities, each sum relative to its own largest term and in double-word
    arithmetic, plus the exact log filtered probabilities."""
    u = log_state + log_likelihood
    top = jax.lax.stop_gradient(finite_or_zero(jnp.max(u)))
    weights = jnp.exp(u - top)
    total = reduce_states(jnp.add, weights)
    live = total > 0
    filtered = weights / jnp.where(live, total, 1)
    log_filtered = jnp.where(live, u - top - safe_log(jnp.where(live, total, 1)), -jnp.inf)
    state_top = jax.lax.stop_gradient(finite_or_zero(jnp.max(log_state)))
    state = jnp.exp(log_state - state_top)
    mass = jax.lax.stop_gradient(compensated_sum(state))  # (see `filter_readout`)
    predicted = state / jnp.where(mass[0] > 0, mass[0], 1)
    log_normaliser = top - state_top + log_compensated(*compensated_sum(weights * row_sums))
    log_normaliser = jnp.where(mass[0] > 0, log_normaliser - log_compensated(*mass), -jnp.inf)
    return LogFilterReadout(filtered, predicted, log_normaliser, log_filtered)


class HMMForward(AbstractMonoid):
    r"""The forward-filtering monoid of a hidden Markov model.

    Elements are `ScaledMatrix(M, r)`, standing for
    $E = \operatorname{diag}(e^{r}) M$ up to a positive factor. One HMM step
    "condition on $y_t$, then move" is the element $(A_t, \ell_t)$:

    $$E_t = \operatorname{diag}\big(p(y_t \mid z_t)\big)\, A_t, \qquad
      E_t[i, j] = p(y_t, z_{t+1} = j \mid z_t = i).$$

    The product is the matrix product in time order, returned in normal form (each
    row of $M$ sums to one, or is zero with $r_i = -\infty$; $\max_i r_i = 0$):

    $$(M_a, r_a) \otimes (M_b, r_b) \propto
      \operatorname{diag}(e^{r_a}) M_a \operatorname{diag}(e^{r_b}) M_b,$$

    computed row by row with each row's largest term factored out, so no row of a long
    product underflows. The identity is $(I, 0)$.

    The *forward action* on a probability vector (the predicted distribution) is one
    filtering step, $O(K^2)$:

    $$p \cdot (M, r) = \frac{p\, \operatorname{diag}(e^r) M}
      {\lVert p\, \operatorname{diag}(e^r) M\rVert_1}$$

    (condition, then move), so a forward scan with `init` $= \pi$ returns
    $p(z_{t+1} \mid y_{1:t})$. The zero vector (after an impossible observation)
    stays zero.

    **Arguments:**

    - `transition_matrix`: optional fixed $K\times K$ matrix $A$. Then `lift` turns
      a log-likelihood vector $\ell_t$ into the step $(A, \ell_t)$, so a sequence of
      steps needs only the $T\times K$ log-likelihoods.
    """

    transition_matrix: Float[Array, "K K"] | None = None

    action_direction: ClassVar[ActionDirection] = "forward"
    lifts: ClassVar[bool] = True

    def _parts(self, x) -> tuple[Array, Array | Evidence]:
        """`(matrix, log-likelihoods or Evidence)` of one input."""
        if self.transition_matrix is None:
            return x.matrix, x.log_scale
        return self.transition_matrix, x

    def lift(self, x: Float[Array, " K"] | Evidence | ScaledMatrix) -> ScaledMatrix:
        """One step as an element: `(transition_matrix, x)`, or `x` itself when no
        fixed matrix is set (then `x` is a `ScaledMatrix`). Log-likelihoods may come
        as `Evidence`."""
        matrix, lik = self._parts(x)
        if isinstance(lik, Evidence):
            lik = lik.log_likelihood
        return ScaledMatrix(matrix, lik)

    def act_input(self, state: Float[Array, " K"], x) -> Float[Array, " K"]:
        r"""One filtering step from an input: `act(state, lift(x))`, and with
        `Evidence` the fast form

        $$p \mapsto \frac{A^\top w}{\lVert A^\top w \rVert_1}, \qquad
          w = p \odot e^{\ell - \max \ell}$$

        (no exponential in the loop, no division before the product). It shifts by the
        largest log-likelihood over *all* states, so it is exact when $p$ puts weight
        on the most likely state; if $p$ lives only on states whose likelihood is far
        below it (beyond the dtype's range) the weights underflow to zero, where
        `act` (which shifts over the support of $p$) does not. `scanalg.hmm` uses it
        only when the initial and transition probabilities have no zero entries: then
        every prediction has full support.
        """
        matrix, lik = self._parts(x)
        return predict(state, matrix, lik)

    def combine(self, earlier: ScaledMatrix, later: ScaledMatrix) -> ScaledMatrix:
        return _scaled_matmul(earlier, later)

    def identity(self, like: ScaledMatrix) -> ScaledMatrix:
        return _scaled_identity(like)

    def canonical(self, element: ScaledMatrix) -> ScaledMatrix:
        r"""The normal form: rows of $M$ summing to one (or zero, with $r_i = -\infty$),
        $\max_i r_i = 0$. Equal elements have equal normal forms."""
        matrix, log_scale = element
        rows = jnp.sum(matrix, axis=-1)
        log_scale = log_scale + safe_log(rows)
        live = (log_scale > -jnp.inf)[:, None]
        matrix = jnp.where(live, matrix / jnp.where(rows > 0, rows, 1)[:, None], 0)
        top = jax.lax.stop_gradient(finite_or_zero(jnp.max(log_scale)))
        return ScaledMatrix(matrix, log_scale - top)

    def act(self, state: Float[Array, " K"], element: ScaledMatrix) -> Float[Array, " K"]:
        return predict(state, *element)


def backward_kernel(
    filtered: Float[Array, " K"], transition_matrix: Float[Array, "K K"]
) -> Float[Array, "K K"]:
    r"""The backward kernel $B[i, j] = p(z_t = i \mid z_{t+1} = j, y_{1:t})$.

    $B[i, j] \propto f[i] A[i, j]$, each column normalised to sum one; a column $j$
    with $(fA)_j = 0$ ($z_{t+1} = j$ impossible) is zero.
    """
    weights = filtered[:, None] * transition_matrix
    columns = jnp.sum(weights, axis=0)
    return weights / jnp.where(columns > 0, columns, 1)[None, :]


def log_backward_weights(
    log_filtered: Float[Array, "*t K"], log_transition_matrix: Float[Array, "*t K K"]
) -> tuple[Float[Array, "*t K K"], Float[Array, "*t K"]]:
    r"""The backward kernel from log-probabilities, exact at any dynamic range:
    `(weights, columns)` with $B = $ `weights / columns` (columns broadcast), where
    `weights`$[i, j] = e^{\log f_i + \log A_{ij} - M_j}$ and $M_j$ is the largest
    exponent of column $j$ (so no column underflows as a whole); a column $j$ that is
    impossible has zero weights and total."""
    exponents = log_filtered[..., :, None] + log_transition_matrix
    top = jax.lax.stop_gradient(finite_or_zero(jnp.max(exponents, axis=-2, keepdims=True)))
    weights = jnp.exp(exponents - top)
    return weights, jnp.sum(weights, axis=-2)


def _normalise_columns(x: Array) -> Array:
    return normalise(x, axis=0)


class AbstractHMMBackward(AbstractMonoid):
    r"""Markov kernels, backwards: the elements, product, identity and action shared by
    `HMMBackward` and `HMMLogBackward`, which build the kernels from filtered
    probabilities or from their logarithms.

    Elements are column-stochastic $K\times K$ matrices, the backward kernels

    $$B_t[i, j] = p(z_t = i \mid z_{t+1} = j, y_{1:t})
      = \frac{p(z_t = i \mid y_{1:t})\, A_t[i, j]}{p(z_{t+1} = j \mid y_{1:t})}.$$

    The product is the matrix product in time order, $B_a B_b$ (columns renormalised
    against rounding drift), identity $I$. A product of Markov kernels is a Markov
    kernel: every entry lies in $[0, 1]$ and nothing can overflow or underflow, over
    any length.

    The action on a probability vector is a *reverse* action, one smoothing step
    $O(K^2)$ (the "RTS" form of the HMM smoother):

    $$s \cdot B = B s, \qquad
      p(z_t \mid y_{1:T}) = B_t\, p(z_{t+1} \mid y_{1:T}),$$

    so a reverse scan with `init` $= p(z_T \mid y_{1:T})$ (the last filtered
    distribution) returns all smoothed marginals.

    With `restarts`, every input is a pair `(x, restart)` of an input and a scalar
    bool; where `restart` is set the element is the constant map to $f_t$,
    $B = f_t \mathbf{1}^\top$ (the last step of a sequence in a packed batch: there the
    smoothed distribution is the filtered one, whatever comes later).
    """

    restarts: eqx.AbstractVar[bool]

    action_direction: ClassVar[ActionDirection] = "reverse"
    lifts: ClassVar[bool] = True

    @abc.abstractmethod
    def _weights(self, x) -> tuple[Array, Array, Array]:
        """`(weights, columns, filtered)` of one input without its restart flag: the
        kernel is `weights / columns`, column by column."""

    def _split(self, x) -> tuple[object, Array | None]:
        return x if self.restarts else (x, None)

    def lift(self, x) -> Float[Array, "K K"]:
        """The kernel $B_t$ of one input."""
        x, restart = self._split(x)
        weights, columns, filtered = self._weights(x)
        kernel = weights / jnp.where(columns > 0, columns, 1)[None, :]
        if restart is None:
            return kernel
        constant = jnp.broadcast_to(filtered[:, None], kernel.shape)
        return jnp.where(restart, constant, kernel)

    def combine(
        self, earlier: Float[Array, "K K"], later: Float[Array, "K K"]
    ) -> Float[Array, "K K"]:
        return _normalise_columns(earlier @ later)

    def identity(self, like: Float[Array, "K K"]) -> Float[Array, "K K"]:
        return jnp.eye(like.shape[-1], dtype=like.dtype)

    def act(self, state: Float[Array, " K"], element: Float[Array, "K K"]) -> Float[Array, " K"]:
        return normalise(element @ state)


class HMMBackward(AbstractHMMBackward):
    r"""The backward-smoothing monoid of a hidden Markov model: Markov kernels, backwards
    (see `AbstractHMMBackward`), built by `lift` from the filtered probabilities $f_t$
    (and the transition matrix).

    **Arguments:**

    - `transition_matrix`: optional fixed $K\times K$ matrix $A$. Then `lift` turns the
      filtered probabilities $f_t$ into $B_t$; without it, inputs are pairs
      `(f_t, A_t)`.
    - `restarts`: if true, every input is a pair `(x, restart)` (see
      `AbstractHMMBackward`).
    """

    transition_matrix: Float[Array, "K K"] | None = None
    restarts: bool = eqx.field(default=False, static=True)

    def _parts(self, x) -> tuple[Array, Array]:
        if self.transition_matrix is None:
            return x
        return x, self.transition_matrix

    def _weights(self, x) -> tuple[Array, Array, Array]:
        filtered, matrix = self._parts(x)
        weights = filtered[:, None] * matrix
        return weights, jnp.sum(weights, axis=0), filtered

    def act_input(self, state: Float[Array, " K"], x) -> Float[Array, " K"]:
        r"""$B_t s$ without building $B_t$: $f_t \odot \big(A_t (s \oslash f_t A_t)\big)$,
        normalised (two matrix-vector products, no $K\times K$ temporaries)."""
        x, restart = self._split(x)
        filtered, matrix = self._parts(x)
        columns = matrix.T @ filtered
        ratio = state / jnp.where(columns > 0, columns, 1)
        # (`A @ r`, not the fusible `sum(A * r, axis=1)`: jaxlib 0.10.2's XLA:CPU
        # miscompiles `f * sum(A * r, axis=1)` under `jit(vmap(...))` in float32; see
        # tests/test_backend.py.)
        moved = filtered * (matrix @ ratio)
        if restart is not None:
            moved = jnp.where(restart, filtered * jnp.sum(state), moved)
        return normalise(moved)


class HMMLogBackward(AbstractHMMBackward):
    r"""The backward-smoothing monoid with kernels built from *log* filtered
    probabilities: the same elements as `HMMBackward` (see `AbstractHMMBackward`), but
    exact at any dynamic range. A state whose filtered probability is below the float
    range still gets its kernel entries right: each column is computed relative to its
    own largest term (`log_backward_weights`). Costs $K^2$ exponentials per step.

    **Arguments:**

    - `log_transition_matrix`: optional fixed $K\times K$ matrix $\log A$. Then `lift`
      turns the log filtered probabilities $\log f_t$ into $B_t$; without it, inputs
      are pairs `(log f_t, log A_t)`.
    - `restarts`: if true, every input is a pair `(x, restart)` (see
      `AbstractHMMBackward`).
    """

    log_transition_matrix: Float[Array, "K K"] | None = None
    restarts: bool = eqx.field(default=False, static=True)

    def _weights(self, x) -> tuple[Array, Array, Array]:
        if self.log_transition_matrix is None:
            log_filtered, log_matrix = x
        else:
            log_filtered, log_matrix = x, self.log_transition_matrix
        weights, columns = log_backward_weights(log_filtered, log_matrix)
        return weights, columns, jnp.exp(log_filtered)

    def act_input(self, state: Float[Array, " K"], x) -> Float[Array, " K"]:
        r"""$B_t s$ from the weights of `log_backward_weights`, without dividing the
        kernel: $\sum_j w_{ij} s_j / c_j$."""
        x, restart = self._split(x)
        weights, columns, filtered = self._weights(x)
        ratio = state / jnp.where(columns > 0, columns, 1)
        moved = weights @ ratio
        if restart is not None:
            moved = jnp.where(restart, filtered * jnp.sum(state), moved)
        return normalise(moved)


# --------------------------------------------------------------------------------------
# Log-space matrices: exact filtering (sum-product) and Viterbi (max-plus).
# --------------------------------------------------------------------------------------

_BROADCAST_STATES = 4  # up to here a product may hold its K^3 terms at once


def log_matmul(a: Float[Array, "K K"], b: Float[Array, "K K"], log_sum: bool) -> Array:
    r"""The product $c_{ik} = \bigoplus_j a_{ij} + b_{jk}$ with $\oplus$ the maximum, or
    (`log_sum`) $\log\sum\exp$ (each entry relative to its own largest term: exact at
    any dynamic range).

    For more than 4 states the $K^3$ terms are never held at once (a loop over $j$ with
    $K\times K$ temporaries): under `vmap` over a million elements they would not fit.
    """
    k = a.shape[-1]
    if k <= _BROADCAST_STATES:
        terms = a[:, :, None] + b[None, :, :]
        return logsumexp(terms, axis=1) if log_sum else jnp.max(terms, axis=1)

    def term(j):
        return jax.lax.dynamic_index_in_dim(a, j, 1) + jax.lax.dynamic_index_in_dim(b, j, 0)

    neg_inf = jnp.full((k, k), -jnp.inf, a.dtype)
    top = jax.lax.fori_loop(0, k, lambda j, m: jnp.maximum(m, term(j)), neg_inf)
    if not log_sum:
        return top
    shift = jax.lax.stop_gradient(finite_or_zero(top))
    total = jax.lax.fori_loop(
        0, k, lambda j, s: s + jnp.exp(term(j) - shift), jnp.zeros((k, k), a.dtype)
    )
    return safe_log(total) + shift


def _max_normalise(x: Array, axis=None) -> Array:
    """Subtract the maximum (along `axis`), leaving all-$-\\infty$ slices alone."""
    return x - jax.lax.stop_gradient(
        finite_or_zero(jnp.max(x, axis=axis, keepdims=axis is not None))
    )


class AbstractLogMatrixMonoid(AbstractMonoid):
    r"""Matrices in log space with row offsets, under the product
    $(a \otimes b)_{ik} = \bigoplus_j \big(r^a_i + W^a_{ij} + r^b_j + W^b_{jk}\big)$:
    $\oplus = \max$ (`MaxPlus`, Viterbi) or $\log\sum\exp$ (`HMMLogForward`,
    filtering).

    Elements are `LogMatrix(W, r)`, standing for the matrix with entries
    $r_i + W_{ij}$ up to an additive constant. One HMM step "weigh by $y_t$, then
    move" is $(\log A_t, \ell_t)$. Products are returned in normal form: each row of
    $W$ has maximum $0$ (or is all $-\infty$), and $\max_i r_i = 0$. Keeping rows and
    offsets separately normalised keeps every stored number of the size of a
    *difference* of logarithms, so float32 stays accurate over long products. The
    identity has $0$ on the diagonal, $-\infty$ elsewhere.

    The forward action on a vector $\delta$ (scores, or log-probabilities) is one
    step, $O(K^2)$: $(\delta \cdot (W, r))_j = \bigoplus_i \big(\delta_i + r_i +
    W_{ij}\big) - c$, with $c$ making the maximum $0$.
    """

    log_transition_matrix: eqx.AbstractVar[Float[Array, "K K"] | None]
    log_sum: eqx.AbstractClassVar[bool]

    action_direction: ClassVar[ActionDirection] = "forward"
    lifts: ClassVar[bool] = True

    def lift(self, x: Float[Array, " K"] | LogMatrix) -> LogMatrix:
        """One step as an element: `(log_transition_matrix, x)`, or `x` itself when no
        fixed matrix is set."""
        if self.log_transition_matrix is None:
            return x
        return LogMatrix(self.log_transition_matrix, x)

    def combine(self, earlier: LogMatrix, later: LogMatrix) -> LogMatrix:
        wa, ra = earlier
        wb, rb = later
        scores = log_matmul(wa + rb[None, :], wb, self.log_sum)
        top = jax.lax.stop_gradient(finite_or_zero(jnp.max(scores, axis=-1)))
        return LogMatrix(scores - top[:, None], _max_normalise(ra + top))

    def identity(self, like: LogMatrix) -> LogMatrix:
        k = like.matrix.shape[-1]
        eye = jnp.eye(k, dtype=bool)
        matrix = jnp.where(eye, 0, -jnp.inf).astype(like.matrix.dtype)
        return LogMatrix(matrix, jnp.zeros((k,), like.offset.dtype))

    def canonical(self, element: LogMatrix) -> LogMatrix:
        r"""The normal form: rows of $W$ with maximum $0$ (or all $-\infty$, with
        $r_i = -\infty$), $\max_i r_i = 0$. Equal elements have equal normal forms."""
        matrix, offset = element
        rows = jnp.max(matrix, axis=-1)
        offset = offset + rows
        live = (offset > -jnp.inf)[:, None]
        matrix = jnp.where(live, matrix - finite_or_zero(rows)[:, None], -jnp.inf)
        return LogMatrix(matrix, _max_normalise(offset))

    def act(self, state: Float[Array, " K"], element: LogMatrix) -> Float[Array, " K"]:
        matrix, offset = element
        terms = (state + offset)[:, None] + matrix
        plus = logsumexp(terms, axis=0) if self.log_sum else jnp.max(terms, axis=0)
        return _max_normalise(plus)


class MaxPlus(AbstractLogMatrixMonoid):
    r"""The max-plus (tropical) matrix product, for the Viterbi algorithm (see
    `AbstractLogMatrixMonoid`):

    $$(a \otimes b)_{ik} = \max_j \big(r^a_i + W^a_{ij} + r^b_j + W^b_{jk}\big).$$

    Acting on the best scores $\delta_t[k] = \max_{z_{1:t-1}} \log p(z_{1:t-1},
    z_t = k, y_{1:t})$ (up to a constant) it is one Viterbi step.

    **Arguments:**

    - `log_transition_matrix`: optional fixed $K\times K$ matrix $\log A$. Then `lift`
      turns a log-likelihood vector $\ell_t$ into the step $(\log A, \ell_t)$.
    """

    log_transition_matrix: Float[Array, "K K"] | None = None
    log_sum: ClassVar[bool] = False


class HMMLogForward(AbstractLogMatrixMonoid):
    r"""The forward-filtering monoid in log space: exact at any dynamic range (see
    `AbstractLogMatrixMonoid`),

    $$(a \otimes b)_{ik} = \log\sum_j \exp\big(r^a_i + W^a_{ij} + r^b_j +
      W^b_{jk}\big),$$

    each entry computed relative to its own largest term. Acting on the log of the
    predicted distribution it is one filtering step,
    $\log p_{t+1}[j] = \log\sum_i \exp(\log p_t[i] + \ell_t[i] + \log A_t[i, j])$
    (up to a constant), so a state whose probability is below the float range keeps
    its logarithm, and comes back exactly if later observations favour it. It costs
    $K^2$ exponentials per step where `HMMForward` costs $K^2$ multiplications; the HMM
    functions use it only when the transition matrices have entries near zero.

    **Arguments:**

    - `log_transition_matrix`: optional fixed $K\times K$ matrix $\log A$. Then `lift`
      turns a log-likelihood vector $\ell_t$ into the step $(\log A, \ell_t)$.
    """

    log_transition_matrix: Float[Array, "K K"] | None = None
    log_sum: ClassVar[bool] = True
