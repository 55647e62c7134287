r"""Matrix monoids over a semiring: `SemiringMatMul` and the chain monoid
`ChainMessages`."""

from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._monoid import AbstractMonoid, ActionDirection
from ._base import AbstractSemiring, check_semiring


def semiring_eye(semiring: AbstractSemiring, k: int, dtype) -> Array:
    r"""The $k\times k$ identity matrix of the semiring ($\bar 1$ on the diagonal,
    $\bar 0$ elsewhere), shape `(k, k, *value_shape)`."""
    eye = jnp.eye(k, dtype=bool).reshape(k, k, *(1,) * len(semiring.value_shape))
    return jnp.where(eye, semiring.one((k, k), dtype), semiring.zero((k, k), dtype))


def semiring_basis(semiring: AbstractSemiring, like: Array) -> Array:
    r"""The first unit vector $(\bar 1, \bar 0, \dots, \bar 0)$, shaped like the vector
    of values `like` (shape `(k, *value_shape)`)."""
    k = like.shape[0]
    first = (jnp.arange(k) == 0).reshape(k, *(1,) * len(semiring.value_shape))
    return jnp.where(first, semiring.one((k,), like.dtype), semiring.zero((k,), like.dtype))


class SemiringMatMul(AbstractMonoid):
    r"""Matrices over a semiring under the semiring matrix product, in time order.

    Elements are $K\times K$ matrices of semiring values, arrays of shape
    `(K, K, *semiring.value_shape)`:

    $$(A \otimes B)_{ik} = \bigoplus_j A_{ij} \otimes B_{jk}, \qquad
      e = \operatorname{diag}(\bar 1, \dots, \bar 1)\ (\bar 0 \text{ elsewhere}).$$

    It is a monoid whenever the semiring is one (associativity is the distributive
    law). The forward action is the row vector times a matrix,
    $(v \cdot A)_j = \bigoplus_i v_i \otimes A_{ij}$, $O(K^2)$ per step: a forward
    scan with `init` $v$ returns $v \otimes A_1 \otimes\cdots\otimes A_t$. With
    `Log` this is the forward algorithm of an HMM or CRF in log space, with `Max`
    Viterbi, with `Std` the plain matrix product.

    **Arguments:**

    - `semiring`: an `scanalg.semirings.AbstractSemiring`.
    """

    semiring: AbstractSemiring

    action_direction: ClassVar[ActionDirection] = "forward"

    def __check_init__(self):
        check_semiring(self.semiring, "SemiringMatMul(semiring=...)")

    def combine(self, earlier: Array, later: Array) -> Array:
        return self.semiring.matmul(earlier, later)

    def identity(self, like: Array) -> Array:
        return semiring_eye(self.semiring, like.shape[0], like.dtype)

    def act(self, state: Array, element: Array) -> Array:
        return self.semiring.vecmat(state, element)


class ChainMessages(AbstractMonoid):
    r"""The messages of a chain (linear-chain CRF, HMM) over a semiring, normalised,
    for packed batches of chains.

    A chain over states $1..K$ has unary scores $u_t$ (shape `(K,)`) and pairwise
    scores $\psi_t$ (shape `(K, K)`, from step $t$ to $t+1$). Its forward messages are

    $$\alpha_1 = u_1, \qquad \alpha_{t+1} = (\alpha_t \otimes \psi_t) \odot u_{t+1},$$

    (scores embedded by `semiring.from_scores`, $\odot$ elementwise $\otimes$). The
    *input* of step $t+1$ is `(restart, u, psi)` (or `(restart, u)` with fixed
    `potentials` $\psi$); it lifts to the element `(restart, M)` with the semiring
    matrix $M_{ij} = \psi_{ij} \otimes u_j$. A `restart` step starts a new chain (of a
    packed batch): its message is $u$ whatever came before (then $M_{ij} = u_j$).

    Elements combine as in `scanalg.monoids.Segmented`: $(f_1, A) \otimes (f_2, B)
    = (f_1 \lor f_2, B)$ if $f_2$, else $(f_1 \lor f_2, A \otimes B)$; the forward
    action is $\alpha \cdot (f, M) = \alpha \otimes M$, with $\alpha$ replaced by the
    first unit vector when $f$ (so that the result is row one of $M$, $u$).

    **Normalised (projective).** Products and messages are kept in normal form
    (`semiring.normalise`: the largest score is zero), so long chains stay accurate
    in float32; the scale is dropped. The laws hold up to that scale, and the normal
    form is canonical, so every scan method returns the same normalised messages. A
    chain's total is recovered from the per-step shifts (see
    `scanalg.semirings.chain_forward`).

    **Reverse.** With `reverse=True` the same inputs, given the *transposed* pairwise
    scores, give the backward messages
    $\beta'_t = u_t \odot (\psi_t \otimes \beta'_{t+1})$ by a reverse scan: the
    elements are multiplied in the other order (as in `scanalg.monoids.Dual`) and the
    action is a reverse one; a `restart` flag then marks the *last* step of a chain.

    **Arguments:**

    - `semiring`: an `scanalg.semirings.AbstractSemiring`.
    - `potentials`: optional fixed pairwise scores $\psi$, shape `(K, K)`; then inputs
      are `(restart, u)`.
    - `reverse`: multiply in reverse time order (backward messages).
    - `fast`: with fixed `potentials`, use the semiring's prepared score form
      (`prepare_scores`, `vecmat_prepared`; `Std` has one: a matrix-vector product
      per step, no exponential) and `normalise_positive`, which assumes that no
      message is all $\bar 0$. For callers that guarantee it (see
      `scanalg.semirings.chain_forward`).
    """

    semiring: AbstractSemiring
    potentials: Float[Array, "K K"] | None
    reverse: bool = eqx.field(static=True)
    prepared: Any

    def __init__(
        self,
        semiring: AbstractSemiring,
        potentials: Float[Array, "K K"] | None = None,
        reverse: bool = False,
        fast: bool = False,
    ):
        check_semiring(semiring, "ChainMessages(semiring=...)")
        self.semiring = semiring
        self.potentials = potentials
        self.reverse = reverse
        prepared = None
        if fast and potentials is not None:
            prepared = semiring.prepare_scores(jnp.asarray(potentials))
        self.prepared = prepared

    lifts: ClassVar[bool] = True

    @property
    def action_direction(self) -> ActionDirection:
        return "reverse" if self.reverse else "forward"

    def _parts(self, x) -> tuple[Array, Array, Array]:
        if self.potentials is None:
            restart, unary, scores = x
        else:
            (restart, unary), scores = x, self.potentials
        return jnp.asarray(restart, bool), unary, scores

    def lift(self, x) -> tuple[Bool[Array, ""], Array]:
        """The element `(restart, M)` of one input."""
        restart, unary, scores = self._parts(x)
        scores = jnp.where(restart, jnp.zeros_like(scores), scores) + unary[None, :]
        return restart, self.semiring.from_scores(scores)

    def combine(self, earlier, later):
        if self.reverse:
            earlier, later = later, earlier
        (f1, a), (f2, b) = earlier, later
        product, _ = self.semiring.normalise(self.semiring.matmul(a, b))
        return f1 | f2, jnp.where(f2, b, product)

    def identity(self, like):
        flag, matrix = like
        return jnp.zeros_like(flag), semiring_eye(self.semiring, matrix.shape[0], matrix.dtype)

    def act(self, state: Array, element) -> Array:
        flag, matrix = element
        start = jnp.where(flag, semiring_basis(self.semiring, state), state)
        return self.semiring.normalise(self.semiring.vecmat(start, matrix))[0]

    def candidates(self, state: Array, x) -> Array:
        r"""The terms $\alpha_i \otimes \psi_{ij}$ of one input's message, shape
        `(K, K, *value_shape)` (indexed `[i, j]`)."""
        _, _, scores = self._parts(x)
        return self.semiring.times_scores(state[:, None], scores)

    def message(self, state: Array, x) -> Array:
        r"""The message of one input before its unary: $\alpha \otimes \psi$, or
        $\bar 1$ for a restart (not normalised)."""
        restart, _, scores = self._parts(x)
        if self.prepared is None:
            moved = self.semiring.vecmat_scores(state, scores)
        else:
            moved = self.semiring.vecmat_prepared(state, self.prepared)
        return jnp.where(restart, self.semiring.one(moved.shape[:1], moved.dtype), moved)

    def act_input(self, state: Array, x) -> Array:
        r"""One step from an input, $(\alpha \otimes \psi) \odot u$ normalised, without
        building the matrix $M$ (`semiring.vecmat_scores`: cheaper for `KMax` and
        `Entropy`; with `fast`, `semiring.vecmat_prepared` and
        `semiring.normalise_positive`)."""
        _, unary, _ = self._parts(x)
        moved = self.semiring.times_scores(self.message(state, x), unary)
        if self.prepared is None:
            return self.semiring.normalise(moved)[0]
        return self.semiring.normalise_positive(moved)
