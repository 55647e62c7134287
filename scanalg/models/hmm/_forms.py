r"""The two numerical forms of the HMM passes, and the rule that picks one.

Every pass (`_inference`) is written once against `AbstractForm`:

- `Probabilities`: predictions, kernels and weights as probabilities
  (`HMMForward`, `Evidence`, `HMMBackward`): a matrix-vector product per step, no
  exponential. Exact when every transition probability in use is far from zero (at
  least `dense_floor`): then every state keeps at least that share of the mass after
  each move, so whatever is too small to store is negligible, whatever the
  observations.
- `LogProbabilities`: the same quantities from logarithms (`HMMLogForward`,
  `HMMLogBackward`, `log_filter_readout`): exact at any dynamic range, at the price of
  $K^2$ exponentials per step.

`exact_or_fast` chooses at run time with one `lax.cond` around a whole pass (under
`vmap` over the model both forms run and the right one is selected).
"""

import abc
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Int

from ..._methods import as_method
from ..._numerics import (
    fast_or_exact,
    fold_states,
    map_states,
    safe_log,
    straight_through_one,
)
from ..._segments import Segments
from ._monoids import (
    Evidence,
    HMMBackward,
    HMMForward,
    HMMLogBackward,
    HMMLogForward,
    LogMatrix,
    ScaledMatrix,
    filter_readout,
    log_filter_readout,
)


class Model(NamedTuple):
    """A validated HMM over packed sequences."""

    pi: Array  # (K,)
    a: Array  # (K, K) or (N-1, K, K)
    ll: Array  # (N, K)
    segs: Segments

    @property
    def time_varying(self) -> bool:
        return self.a.ndim == 3

    @property
    def num_states(self) -> int:
        return self.ll.shape[1]

    def row(self, matrix: Array, i: int | Int[Array, ""]) -> Array:
        """Row `i` of the transition matrix of every move, shape `(N-1, K)` (or `(1, K)`
        for a fixed one)."""
        return matrix[:, i, :] if self.time_varying else matrix[i][None, :]

    def row_sums(self) -> Array:
        """The mass that moves on from each step, `(N, K)`: the row sums of its matrix
        as ones with their gradient (so a long float32 sum does not add up their
        rounding, and the gradient is the path sum's off the simplex), and exact ones at
        the last step of every sequence, which moves nothing."""
        sums = straight_through_one(jnp.sum(self.a, axis=-1))
        ones = jnp.ones_like(self.pi)
        if self.time_varying:
            sums = jnp.concatenate([sums, ones[None]])
        return jnp.where(self.segs.ends[:, None], ones, sums)


class Readout(NamedTuple):
    filtered: Array  # (N, K) probabilities
    predicted: Array  # (N, K) probabilities
    log_normaliser: Array  # (N,)
    kernel: Array  # (N, K) what the backward kernels are built from


def dense_floor(dtype, num_states: int) -> float:
    r"""The smallest transition probability for which the probability form is exact,
    $K\sqrt{\text{tiny}/\epsilon}$: a move then gives every state at least
    $\min A$ of the mass and the terms lost below the float range are below
    $K^2 \text{tiny} / (\min A)^2 \le \epsilon$ relative."""
    info = jnp.finfo(dtype)
    return num_states * (float(info.tiny) / float(info.eps)) ** 0.5


def dense(model: Model) -> Array:
    """Whether every transition probability in use is at least `dense_floor` (the moves
    out of a sequence in a packed batch are not used)."""
    a = model.a
    flags = model.segs.end_flags()
    if model.time_varying and flags is not None:
        a = jnp.where(flags[:, None, None], 1, a)
    floor = dense_floor(a.dtype, model.num_states)
    return jax.lax.stop_gradient(jnp.min(a, initial=1) >= floor)


class AbstractForm(abc.ABC):
    """How the passes represent distributions (see the module docstring)."""

    def __init__(self, model: Model):
        self.model = model

    @property
    @abc.abstractmethod
    def matrix(self) -> Array:
        """The transition matrix (or matrices) in this form."""

    @abc.abstractmethod
    def filter(self, method) -> Readout:
        r"""The forward filter: filtered and predicted probabilities, per-step
        log-normalisers, kernel inputs.

        One forward scan with initial state $\pi$, restarted at every sequence's first
        step: the state before step $t$ is the prediction $p_t = p(z_t \mid
        y_{\text{start}:t-1})$. The loop stores only the predictions; the filtered $f_t$
        and the log-normalisers $\log(q_t \cdot A_t\mathbf{1})$, $q_t = p_t \odot
        e^{\ell_t}$, are read out of all of them at once afterwards (`filter_readout`
        under `vmap`: every extra kernel in the loop body costs more than the whole
        vectorised pass). $A_t\mathbf{1} = \mathbf{1}$ for a stochastic matrix (taken as
        ones with their gradient, so that the log-likelihood's gradient is the path
        sum's for any nonnegative input); the last step of each sequence moves nothing.

        With probabilities and a method that only acts (sequential), the loop shifts
        each step by the largest $\ell_t$ over all states (over the support of $\pi$ at
        a first step), with the exponentials computed once before the loop (`Evidence`)
        and used by the readout too: exact because the form is used only for dense
        models, whose predictions have full support.
        """

    @abc.abstractmethod
    def uniform(self) -> Array:
        """The kernel input of a uniform distribution."""

    @abc.abstractmethod
    def backward_monoid(self, restarts: bool):
        """The backward-kernel monoid for these kernel inputs."""

    @abc.abstractmethod
    def probabilities(self, kernel: Array) -> Array:
        """Probabilities from kernel inputs."""

    @abc.abstractmethod
    def columns(self, kernel: Array) -> tuple[Callable[[int], Array], Array]:
        """`(row, total)` for the $N - 1$ moves: `row(i)`, shape `(N-1, K)`, is row $i$
        of the unnormalised backward kernel (weights $\\propto f_t[i] A_t[i, j]$ over
        $j$; never stored for all $i$ at once) and `total` its column sums."""

    def counts(self, kernel: Array, row: Callable[[int], Array], ratio: Array) -> Array:
        """$\\sum_t$ `row(i)`$_t \\odot$ `ratio`$_t$ over the moves of each sequence,
        `(B, K, K)`."""
        return map_states(
            ratio.shape[1], lambda i: self.model.segs.sum_moves(row(i) * ratio), axis=1
        )


class Probabilities(AbstractForm):
    """Probabilities: fast, exact when the model is `dense`."""

    @property
    def matrix(self) -> Array:
        return self.model.a

    def filter(self, method) -> Readout:
        m = self.model
        monoid = HMMForward() if m.time_varying else HMMForward(m.a)
        resolved = as_method(method).resolve(monoid, self._moves(m.ll), m.pi)
        if resolved.combines_with_init:
            lik = m.ll
        else:  # one multiplication per state in the loop; at a first step the state is
            # pi, so the shift is over its support
            lik = Evidence.of(m.ll, m.pi > 0, m.segs.first)
        predicted = m.segs.scan_forward(monoid, self._moves(lik), init=m.pi, method=resolved)
        out = jax.vmap(filter_readout)(predicted, m.row_sums(), lik)
        return Readout(out.filtered, predicted, out.log_normaliser, out.filtered)

    def _moves(self, lik):
        if not self.model.time_varying:  # (all N: see `Segments.scan_forward`)
            return lik
        return ScaledMatrix(self.model.a, jax.tree.map(lambda x: x[:-1], lik))

    def uniform(self) -> Array:
        return jnp.full_like(self.model.pi, 1 / self.model.num_states)

    def backward_monoid(self, restarts: bool):
        return HMMBackward(None if self.model.time_varying else self.model.a, restarts=restarts)

    def probabilities(self, kernel: Array) -> Array:
        return kernel

    def columns(self, kernel: Array) -> tuple[Callable[[int], Array], Array]:
        m, f = self.model, kernel[:-1]
        total = jnp.einsum("ti,tij->tj", f, m.a) if m.time_varying else f @ m.a
        return (lambda i: f[:, i, None] * m.row(m.a, i)), total

    def counts(self, kernel: Array, row: Callable[[int], Array], ratio: Array) -> Array:
        # sum_t f_t[i] A[i, j] ratio_t[j] = A[i, j] (f^T ratio)[i, j]: one matrix product
        return self.model.a[None] * self.model.segs.outer_sum(kernel[:-1], ratio)


class LogProbabilities(AbstractForm):
    """Logarithms: exact at any dynamic range."""

    def __init__(self, model: Model):
        super().__init__(model)
        self.log_a = safe_log(model.a)

    @property
    def matrix(self) -> Array:
        return self.log_a

    def filter(self, method) -> Readout:
        m = self.model
        moves = m.ll[:-1]
        if m.time_varying:
            monoid, moves = HMMLogForward(), LogMatrix(self.log_a, moves)
        else:
            monoid = HMMLogForward(self.log_a)
        log_pi = safe_log(m.pi)
        predicted = m.segs.scan_forward(monoid, moves, init=log_pi, method=method)
        out = jax.vmap(log_filter_readout)(predicted, m.row_sums(), m.ll)
        return Readout(out.filtered, out.predicted, out.log_normaliser, out.log_filtered)

    def uniform(self) -> Array:
        k = self.model.num_states
        return jnp.full_like(self.model.pi, -jnp.log(jnp.asarray(k, self.model.pi.dtype)))

    def backward_monoid(self, restarts: bool):
        log_a = None if self.model.time_varying else self.log_a
        return HMMLogBackward(log_a, restarts=restarts)

    def probabilities(self, kernel: Array) -> Array:
        return jnp.exp(kernel)

    def columns(self, kernel: Array) -> tuple[Callable[[int], Array], Array]:
        m, lf = self.model, kernel[:-1]

        def exponent(i):
            return lf[:, i, None] + m.row(self.log_a, i)

        # Each column relative to its own largest term (two passes over the states, no
        # (N-1, K, K) temporary).
        top = fold_states(m.num_states, lambda i, t: jnp.maximum(t, exponent(i)), exponent(0), 1)
        top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0))

        def row(i):
            return jnp.exp(exponent(i) - top)

        total = fold_states(m.num_states, lambda i, total: total + row(i), row(0), 1)
        return row, total


def exact_or_fast(model: Model, body: Callable[[AbstractForm], Any]) -> Any:
    """`body(form)` with `Probabilities` when the model is `dense`, else with
    `LogProbabilities` (`fast_or_exact`: both are traced and compiled)."""
    return fast_or_exact(
        dense(model), lambda: body(Probabilities(model)), lambda: body(LogProbabilities(model))
    )
