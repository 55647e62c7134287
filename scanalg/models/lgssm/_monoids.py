r"""Linear-Gaussian state-space models as monoids: Kalman filter, RTS smoother and
posterior sampling elements (Särkkä & García-Fernández, 2021).

The model, with time index $t = 0, \dots, T-1$:

$$z_0 \sim \mathcal{N}(m_0, P_0), \qquad
  z_t \mid z_{t-1} \sim \mathcal{N}(F_t z_{t-1} + c_t,\; Q_t), \qquad
  y_t \mid z_t \sim \mathcal{N}(H_t z_t + r_t,\; R_t).$$

Two monoids run its inference on any scan method:

- `KalmanFilter`: the filtering elements $(A, b, C, \eta, J, \ell)$, forward.
- `RTSSmoother`: the smoothing elements $(E, g, L)$, a reverse scan.

Posterior sampling is a reverse scan of `Dual(Affine())`: the affine maps
$z_{t+1} \mapsto E_t z_{t+1} + h_t$ composed backwards in time.

The element builders `kalman_filter_elements` (the composition of `filter_gain`,
the observation-independent half, and `filter_element`) and `rts_smoother_elements`
turn per-step model quantities into elements; `scanalg.lgssm` uses them.

Numerics: covariances are built in Joseph form and symmetrised after every product,
and nothing inverts a covariance that may be singular: singular $Q_t$ and $P_0$ are
legal (the smoother's regression on the predicted covariance uses a generalised
inverse, see `scanalg._linalg.psd_inv_logdet`). The innovation covariance of each
element, $H Q H^\top + R$, must be positive definite on the observed components. The
log-normalisers $\ell$ are exact but are differences of quadratic forms in the
states; `scanalg.lgssm_filter` centres the model first and sums the per-step
prediction errors instead.
"""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from ..._linalg import (
    eye_like,
    gaussian_log_density,
    inv_logdet,
    mm,
    psd_inv_logdet,
    symmetrize,
)
from ..._monoid import AbstractMonoid, ActionDirection
from ...monoids import Affine, Dual

# ---------------------------------------------------------------------------
# Filtering
# ---------------------------------------------------------------------------


class FilterElement(eqx.Module):
    r"""A Kalman filtering element of Särkkä & García-Fernández (2021), with its
    log-normaliser.

    For the segment of observations $y_{s:t}$ it holds the conditional density and
    the likelihood, as functions of the state $z_{s-1}$ before the segment:

    $$p(z_t \mid y_{s:t}, z_{s-1}) = \mathcal{N}(z_t \mid A z_{s-1} + b,\; C),
      \qquad p(y_{s:t} \mid z_{s-1}) =
      \exp\!\big(\ell + \eta^\top z_{s-1} - \tfrac12 z_{s-1}^\top J z_{s-1}\big).$$

    A prefix starting at $t = 0$ has $A = 0$, $J = 0$, $\eta = 0$: then $b$, $C$ are
    the filtered mean and covariance and $\ell = \log p(y_{0:t})$.

    **Fields:**

    - `A`: $A$, shape `(state_dim, state_dim)`: the weights of $z_{s-1}$ in the
      conditional mean of $z_t$.
    - `b`: $b$, shape `(state_dim,)`: the offset of that conditional mean.
    - `C`: $C$, shape `(state_dim, state_dim)`: the conditional covariance of $z_t$.
    - `eta`: $\eta$, shape `(state_dim,)`: the linear coefficient of the
      log-likelihood in $z_{s-1}$.
    - `J`: $J$, shape `(state_dim, state_dim)`: the (symmetric) quadratic
      coefficient, a precision, of the log-likelihood in $z_{s-1}$.
    - `loglik`: $\ell$, shape `()`: the constant term of the log-likelihood.

    Shapes are for one element; stacked along time (as `scanalg.scan` takes and
    returns them) every field has a leading axis of length `T`.
    """

    A: Float[Array, "*T n n"]
    b: Float[Array, "*T n"]
    C: Float[Array, "*T n n"]
    eta: Float[Array, "*T n"]
    J: Float[Array, "*T n n"]
    loglik: Float[Array, "*T"]


class FilterState(eqx.Module):
    r"""A filtering distribution $\mathcal{N}(z_t \mid m, P)$ with the running
    log-likelihood $\ell = \log p(y_{0:t})$: what `KalmanFilter.act` acts on.

    **Fields:**

    - `mean`: $m = \mathbb{E}[z_t \mid y_{0:t}]$, shape `(state_dim,)`.
    - `cov`: $P = \mathrm{Cov}[z_t \mid y_{0:t}]$, shape `(state_dim, state_dim)`.
    - `loglik`: $\ell = \log p(y_{0:t})$, shape `()`.

    Shapes are for one element; stacked along time (as `scanalg.scan` takes and
    returns them) every field has a leading axis of length `T`.
    """

    mean: Float[Array, "*T n"]
    cov: Float[Array, "*T n n"]
    loglik: Float[Array, "*T"]


def _absorb(
    b: Float[Array, " n"],
    C: Float[Array, "n n"],
    eta: Float[Array, " n"],
    J: Float[Array, "n n"],
    fused: bool,
):
    r"""Condition $\mathcal{N}(x \mid b, C)$ on the potential
    $\exp(\eta^\top x - \tfrac12 x^\top J x)$.

    With $M = I + C J$ (invertible: its eigenvalues are those of
    $I + C^{1/2} J C^{1/2} \succeq I$), returns $M^{-1}$, the conditioned mean
    $v = M^{-1}(b + C\eta)$ and the log of the normaliser

    $$\log \int \mathcal{N}(x \mid b, C)\, e^{\eta^\top x - \frac12 x^\top J x}\,dx
      = -\tfrac12 \log\det M + \tfrac12 \eta^\top v + \tfrac12 (\eta - J b)^\top M^{-1} b,$$

    none of which needs $C^{-1}$ (so $C$ may be singular, as in the identity).
    """
    dot = mm if fused else jnp.matmul
    M_inv, logdet = inv_logdet(eye_like(C) + dot(C, J), fused)
    u = dot(M_inv, b)
    v = u + dot(M_inv, dot(C, eta))
    lognorm = -0.5 * logdet + 0.5 * (eta @ v) + 0.5 * ((eta - dot(J, b)) @ u)
    return M_inv, v, lognorm


class KalmanFilter(AbstractMonoid):
    r"""Kalman filtering elements (Särkkä & García-Fernández, 2021) under
    composition, extended with the log-likelihood.

    Elements are `FilterElement`s $(A, b, C, \eta, J, \ell)$. With
    $M = I + C_1 J_2$ the product of an earlier element 1 and a later element 2 is

    $$\begin{aligned}
    A &= A_2 M^{-1} A_1, &
    b &= A_2 M^{-1} (b_1 + C_1 \eta_2) + b_2, &
    C &= A_2 M^{-1} C_1 A_2^\top + C_2, \\
    \eta &= A_1^\top M^{-\top} (\eta_2 - J_2 b_1) + \eta_1, &
    J &= A_1^\top M^{-\top} J_2 A_1 + J_1, &
    \ell &= \ell_1 + \ell_2 + \lambda,
    \end{aligned}$$

    where $\lambda$ is the log-normaliser of conditioning
    $\mathcal{N}(b_1, C_1)$ on the potential $(\eta_2, J_2)$ (see `_absorb`). The
    identity is $(I, 0, 0, 0, 0, 0)$. One inversion of $M$ per product.

    The forward action on a `FilterState` $(m, P, \ell)$ is the product with the
    prefix element $(0, m, P, 0, 0, \ell)$: one Kalman step, an $n\times n$ inverse and
    a few $n\times n$ products.
    """

    action_direction: ClassVar[ActionDirection] = "forward"

    def combine(self, earlier: FilterElement, later: FilterElement) -> FilterElement:
        e, la = earlier, later
        M_inv, v, lognorm = _absorb(e.b, e.C, la.eta, la.J, fused=False)
        X = la.A @ M_inv  # A_2 M^{-1}
        Y = M_inv @ e.A  # M^{-1} A_1
        return FilterElement(
            A=(X @ e.A),
            b=(la.A @ v) + la.b,
            C=symmetrize((X @ e.C) @ la.A.T) + la.C,
            eta=Y.T @ (la.eta - la.J @ e.b) + e.eta,
            J=symmetrize((Y.T @ la.J) @ e.A) + e.J,
            loglik=e.loglik + la.loglik + lognorm,
        )

    def identity(self, like: FilterElement) -> FilterElement:
        return FilterElement(
            A=eye_like(like.A),
            b=jnp.zeros_like(like.b),
            C=jnp.zeros_like(like.C),
            eta=jnp.zeros_like(like.eta),
            J=jnp.zeros_like(like.J),
            loglik=jnp.zeros_like(like.loglik),
        )

    def act(self, state: FilterState, element: FilterElement) -> FilterState:
        M_inv, v, lognorm = _absorb(state.mean, state.cov, element.eta, element.J, fused=True)
        X = mm(element.A, M_inv)
        return FilterState(
            mean=mm(element.A, v) + element.b,
            cov=symmetrize(mm(mm(X, state.cov), element.A.T)) + element.C,
            loglik=state.loglik + element.loglik + lognorm,
        )


class FilterGain(eqx.Module):
    r"""The part of a filtering element that does not depend on the observation or
    the offset (see `filter_gain`), and what `filter_element` needs to finish it.

    With the innovation covariance $S = H Q H^\top + R$:

    **Fields:**

    - `A`: $(I - KH) F$, shape `(state_dim, state_dim)`: `FilterElement.A`.
    - `C`: $(I - KH) Q (I - KH)^\top + K R K^\top$, shape `(state_dim, state_dim)`:
      `FilterElement.C`.
    - `J`: $(HF)^\top S^{-1} H F$, shape `(state_dim, state_dim)`: `FilterElement.J`.
    - `K`: the Kalman gain $K = Q H^\top S^{-1}$, shape `(state_dim, emission_dim)`.
    - `H`: the emission weights $H$, shape `(emission_dim, state_dim)`.
    - `HFS`: $(HF)^\top S^{-1}$, shape `(state_dim, emission_dim)`.
    - `S_inv`: $S^{-1}$, shape `(emission_dim, emission_dim)`.
    - `logdet`: $\log\det S$, shape `()`.
    - `F`: the transition weights $F$, shape `(state_dim, state_dim)` (the element
      of an unobserved step).
    - `Q`: the transition covariance $Q$, shape `(state_dim, state_dim)` (likewise).

    Computed for all time steps at once, every field has a leading axis of length
    `T`.
    """

    A: Float[Array, "*T n n"]
    C: Float[Array, "*T n n"]
    J: Float[Array, "*T n n"]
    K: Float[Array, "*T n k"]
    H: Float[Array, "*T k n"]
    HFS: Float[Array, "*T n k"]
    S_inv: Float[Array, "*T k k"]
    logdet: Float[Array, "*T"]
    F: Float[Array, "*T n n"]
    Q: Float[Array, "*T n n"]


def filter_gain(
    F: Float[Array, "n n"],
    Q: Float[Array, "n n"],
    H: Float[Array, "k n"],
    R: Float[Array, "k k"] | Float[Array, " k"],
) -> FilterGain:
    r"""The observation-independent part of a filtering element.

    With $S = H Q H^\top + R$ and $K = Q H^\top S^{-1}$: $A = (I - K H) F$,
    $C = (I - KH) Q (I - KH)^\top + K R K^\top$ (Joseph form: positive semi-definite
    in low precision), $J = (HF)^\top S^{-1} H F$. For fixed parameters it is
    computed once, not once per time step.

    **Arguments:** as for `kalman_filter_elements`.
    """
    diag = R.ndim == 1
    HQ = H @ Q
    S_inv, logdet = psd_inv_logdet((HQ @ H.T) + (jnp.diag(R) if diag else R))
    K = HQ.T @ S_inv
    I_KH = eye_like(Q) - (K @ H)
    KRK = (K * R[None, :]) @ K.T if diag else K @ R @ K.T
    HFS = (H @ F).T @ S_inv
    return FilterGain(
        A=(I_KH @ F),
        C=symmetrize(((I_KH @ Q) @ I_KH.T) + KRK),
        J=symmetrize(HFS @ (H @ F)),
        K=K,
        H=H,
        HFS=HFS,
        S_inv=S_inv,
        logdet=logdet,
        F=F,
        Q=Q,
    )


def mask_emission(
    H: Float[Array, "k n"],
    R: Float[Array, "k k"] | Float[Array, " k"],
    y: Float[Array, " k"],
    observed: Bool[Array, ""] | Bool[Array, " k"],
) -> tuple[Float[Array, "k n"], Float[Array, "k k"] | Float[Array, " k"], Float[Array, " k"]]:
    r"""The emission model and observation for observing only the components
    `observed` of $y$ (a scalar: all or none).

    Marginalising the unobserved components of $y \sim \mathcal{N}(Hz, R)$ leaves
    the rows and columns of the observed ones. The same posterior, with every shape
    kept, comes from replacing each unobserved component by a dummy $y_i = 0$ with
    $H_{i\cdot} = 0$, unit variance and no correlation: it carries no information
    about $z$, and its density $\mathcal{N}(0 \mid 0, 1)$ is left out of the
    log-likelihood by counting only the observed components (`filter_element`).

    **Returns:** `(H, R, y)` with the unobserved components so replaced.
    """
    mask = jnp.broadcast_to(observed, y.shape)
    H = jnp.where(mask[:, None], H, 0)
    y = jnp.where(mask, y, 0)
    if R.ndim == 1:
        return H, jnp.where(mask, R, 1), y
    return H, jnp.where(mask[:, None] & mask[None, :], R, eye_like(R)), y


def filter_element(
    gain: FilterGain,
    c: Float[Array, " n"],
    y: Float[Array, " k"],
    observed: Bool[Array, ""] | Bool[Array, " k"],
) -> FilterElement:
    r"""A filtering element from its `FilterGain` and the step's offset and observation.

    With the innovation $e = y - H c$: $b = c + K e$, $\eta = (HF)^\top S^{-1} e$,
    $\ell = \log \mathcal{N}(e \mid 0, S)$ over the observed components. `observed`
    says which components of $y$ are observed (a scalar: all or none); the gain must
    have been computed for them (`mask_emission`; for all or none, any gain). When
    none is observed the element only predicts: $(F, c, Q, 0, 0, 0)$.
    """
    mask = jnp.broadcast_to(observed, y.shape)
    e = y - (gain.H @ c)
    loglik = gaussian_log_density(e @ (gain.S_inv @ e), gain.logdet, jnp.sum(mask))
    obs = FilterElement(
        A=gain.A,
        b=c + (gain.K @ e),
        C=gain.C,
        eta=(gain.HFS @ e),
        J=gain.J,
        loglik=loglik,
    )
    miss = FilterElement(
        A=gain.F,
        b=c,
        C=gain.Q,
        eta=jnp.zeros_like(c),
        J=jnp.zeros_like(gain.Q),
        loglik=jnp.zeros_like(loglik),
    )
    return jax.tree.map(lambda o, m: jnp.where(jnp.any(mask), o, m), obs, miss)


def kalman_filter_elements(
    F: Float[Array, "n n"],
    c: Float[Array, " n"],
    Q: Float[Array, "n n"],
    H: Float[Array, "k n"],
    R: Float[Array, "k k"] | Float[Array, " k"],
    y: Float[Array, " k"],
    observed: Bool[Array, ""] | Bool[Array, " k"],
) -> FilterElement:
    r"""The filtering element of one time step (vmap it over time).

    For $z_t \mid z_{t-1} \sim \mathcal{N}(F z_{t-1} + c, Q)$ and the observation
    $y = H z_t + \varepsilon$, $\varepsilon \sim \mathcal{N}(0, R)$ (offsets already
    subtracted from `y`), with $S = H Q H^\top + R$, $K = Q H^\top S^{-1}$ and the
    innovation $e = y - H c$:

    $$A = (I - K H) F,\quad b = c + K e,\quad
      C = (I - KH) Q (I - KH)^\top + K R K^\top,\quad
      \eta = (H F)^\top S^{-1} e,\quad J = (H F)^\top S^{-1} H F,$$

    and $\ell = \log \mathcal{N}(e \mid 0, S)$. The first step uses $F = 0$,
    $c = m_0$, $Q = P_0$. Only the components `observed` of $y$ count (the others
    are marginalised, see `mask_emission`); when none is observed the element only
    predicts: $(F, c, Q, 0, 0, 0)$. (`filter_gain` and `filter_element` are its two
    halves.)

    **Arguments:**

    - `F`, `c`, `Q`: the transition weights, offset and covariance.
    - `H`: the emission weights; `R`: the emission covariance, full `(k, k)` or
      its diagonal `(k,)`.
    - `y`: the observation minus its offsets (any values where unobserved).
    - `observed`: whether `y` is observed: a scalar, or one flag per component.

    **Returns:**

    A `FilterElement`.
    """
    H, R, y = mask_emission(H, R, y, observed)
    return filter_element(filter_gain(F, Q, H, R), c, y, observed)


# ---------------------------------------------------------------------------
# Smoothing
# ---------------------------------------------------------------------------


class SmootherElement(eqx.Module):
    r"""An RTS smoothing element: for the segment of time steps $s, \dots, t$ the
    backward conditional
    $p(z_s \mid z_{t+1}, y_{0:t}) = \mathcal{N}(z_s \mid E z_{t+1} + g, L)$.

    A suffix ending at $T-1$ has $E = 0$: then $g$, $L$ are the smoothed mean and
    covariance.

    **Fields:**

    - `E`: $E$, shape `(state_dim, state_dim)`: the weights of $z_{t+1}$ in the
      conditional mean of $z_s$ (for one step, the smoother gain $G_t$).
    - `g`: $g$, shape `(state_dim,)`: the offset of that conditional mean.
    - `L`: $L$, shape `(state_dim, state_dim)`: the conditional covariance of $z_s$.

    Shapes are for one element; stacked along time (as `scanalg.scan` takes and
    returns them) every field has a leading axis of length `T`.
    """

    E: Float[Array, "*T n n"]
    g: Float[Array, "*T n"]
    L: Float[Array, "*T n n"]


class SmootherState(eqx.Module):
    r"""A smoothing distribution $p(z_t \mid y_{0:T-1}) = \mathcal{N}(z_t \mid m, P)$:
    what `RTSSmoother.act` acts on.

    **Fields:**

    - `mean`: $m = \mathbb{E}[z_t \mid y_{0:T-1}]$, shape `(state_dim,)`.
    - `cov`: $P = \mathrm{Cov}[z_t \mid y_{0:T-1}]$, shape `(state_dim, state_dim)`.

    Shapes are for one element; stacked along time (as `scanalg.scan` takes and
    returns them) every field has a leading axis of length `T`.
    """

    mean: Float[Array, "*T n"]
    cov: Float[Array, "*T n n"]


class RTSSmoother(AbstractMonoid):
    r"""Rauch–Tung–Striebel smoothing elements under backward composition.

    Elements are `SmootherElement`s $(E, g, L)$, Gaussian affine maps
    $z_{t+1} \mapsto E z_{t+1} + g + \mathcal{N}(0, L)$ applied right to left:

    $$(E_1, g_1, L_1) \otimes (E_2, g_2, L_2) =
      (E_1 E_2,\; E_1 g_2 + g_1,\; E_1 L_2 E_1^\top + L_1),$$

    identity $(I, 0, 0)$. A reverse scan gives the smoothed marginals. The
    *reverse* action on a `SmootherState` $(m, P)$ of $z_{t+1}$ is one RTS step,
    $(E m + g,\; E P E^\top + L)$: two $n \times n$ products, no solve.
    """

    action_direction: ClassVar[ActionDirection] = "reverse"

    def combine(self, earlier: SmootherElement, later: SmootherElement) -> SmootherElement:
        E, g = Dual(Affine()).combine((earlier.E, earlier.g), (later.E, later.g))
        L = symmetrize((earlier.E @ later.L) @ earlier.E.T) + earlier.L
        return SmootherElement(E=E, g=g, L=L)

    def identity(self, like: SmootherElement) -> SmootherElement:
        return SmootherElement(
            E=eye_like(like.E), g=jnp.zeros_like(like.g), L=jnp.zeros_like(like.L)
        )

    def act(self, state: SmootherState, element: SmootherElement) -> SmootherState:
        return SmootherState(
            mean=mm(element.E, state.mean) + element.g,
            cov=symmetrize(mm(mm(element.E, state.cov), element.E.T)) + element.L,
        )


def rts_smoother_elements(
    mean: Float[Array, " n"],
    cov: Float[Array, "n n"],
    F: Float[Array, "n n"],
    c: Float[Array, " n"],
    Q: Float[Array, "n n"],
) -> SmootherElement:
    r"""The smoothing element of one time step (vmap it over time).

    From the filtered $\mathcal{N}(z_t \mid m, P)$ and the next transition
    $z_{t+1} \mid z_t \sim \mathcal{N}(F z_t + c, Q)$, with
    $G = P F^\top (F P F^\top + Q)^{-1}$:

    $$E = G,\quad g = m - G (F m + c),\quad
      L = (I - G F) P (I - G F)^\top + G Q G^\top \;(= P - G F P).$$

    Where the predicted covariance $F P F^\top + Q$ is singular (a known start,
    noise-free directions of $Q$), its generalised inverse gives a $G$ that is exact
    on its range, and nothing is NaN. The last time step uses $E = 0$, $g = m$,
    $L = P$.
    """
    S_inv, _ = psd_inv_logdet(F @ cov @ F.T + Q)
    G = (F @ cov).T @ S_inv
    I_GF = eye_like(cov) - G @ F
    L = symmetrize(I_GF @ cov @ I_GF.T + G @ Q @ G.T)
    return SmootherElement(E=G, g=mean - G @ (F @ mean + c), L=L)
