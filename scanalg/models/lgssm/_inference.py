r"""Inference in linear-Gaussian state-space models, on any scan method.

The model (dynamax's `ParamsLGSSM` conventions, time index $t = 0, \dots, T-1$):

$$\begin{aligned}
z_0 &\sim \mathcal{N}(\mu_0, \Sigma_0), \\
z_t \mid z_{t-1} &\sim \mathcal{N}(F_t z_{t-1} + B_t u_t + b_t,\; Q_t), && t \ge 1,\\
y_t \mid z_t &\sim \mathcal{N}(H_t z_t + D_t u_t + d_t,\; R_t).
\end{aligned}$$

Each parameter is either fixed or time-varying (an extra leading time axis of
length $T$; for the dynamics, entry $t$ is the transition *into* $z_t$, so entry 0
is unused). The emission covariance is a full matrix `(k, k)` or its diagonal
`(k,)`, fixed or time-varying. A row of `emissions` that is all NaN is missing.

`lgssm_filter`, `lgssm_smoother` and `lgssm_posterior_sample` build the elements
of `scanalg.monoids.KalmanFilter`, `RTSSmoother` and `Dual(Affine())`, call
`scanalg.scan` with the `method` given, and read the results out; every method
returns the same answer up to float rounding.
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ..._linalg import cholesky, lower_inverse
from ..._methods import AbstractScanMethod, as_method
from ..._scan import scan
from ...monoids import Affine, Dual
from ._monoids import (
    FilterElement,
    FilterState,
    KalmanFilter,
    RTSSmoother,
    SmootherElement,
    SmootherState,
    filter_element,
    filter_gain,
    rts_smoother_elements,
)

# ---------------------------------------------------------------------------
# Parameters and results
# ---------------------------------------------------------------------------


class LGSSMInitial(eqx.Module):
    r"""The initial distribution $z_0 \sim \mathcal{N}(\mu_0, \Sigma_0)$.

    **Fields:**

    - `mean`: $\mu_0$, shape `(state_dim,)`.
    - `cov`: $\Sigma_0$, shape `(state_dim, state_dim)`, a covariance matrix.
    """

    mean: Float[Array, " state_dim"]
    cov: Float[Array, "state_dim state_dim"]


class LGSSMDynamics(eqx.Module):
    r"""The dynamics $z_t \mid z_{t-1} \sim \mathcal{N}(F_t z_{t-1} + B_t u_t + b_t, Q_t)$.

    Time-varying arrays have a leading axis of length $T$; entry $t$ is used for the
    transition into $z_t$ (entry 0 is unused). `bias` and `input_weights` may be
    `None` (zero).

    **Fields:** (each optionally with the time axis `T` in front)

    - `weights`: $F_t$, shape `(state_dim, state_dim)`.
    - `bias`: $b_t$, shape `(state_dim,)`, or `None`.
    - `input_weights`: $B_t$, shape `(state_dim, input_dim)`, or `None`.
    - `cov`: $Q_t$, shape `(state_dim, state_dim)`, a covariance matrix.
    """

    weights: Float[Array, "*ntime state_dim state_dim"]
    bias: Float[Array, "*ntime state_dim"] | None
    input_weights: Float[Array, "*ntime state_dim input_dim"] | None
    cov: Float[Array, "*ntime state_dim state_dim"]


class LGSSMEmissions(eqx.Module):
    r"""The emissions $y_t \mid z_t \sim \mathcal{N}(H_t z_t + D_t u_t + d_t, R_t)$.

    Time-varying arrays have a leading axis of length $T$. `cov` is a full matrix
    `(emission_dim, emission_dim)` or a diagonal `(emission_dim,)`, optionally with
    the time axis in front. (A square `(T, T)` covariance with
    `T == emission_dim` is read as fixed and full, as in dynamax.)

    **Fields:** (each optionally with the time axis `T` in front)

    - `weights`: $H_t$, shape `(emission_dim, state_dim)`.
    - `bias`: $d_t$, shape `(emission_dim,)`, or `None`.
    - `input_weights`: $D_t$, shape `(emission_dim, input_dim)`, or `None`.
    - `cov`: $R_t$, shape `(emission_dim, emission_dim)` (a covariance matrix), or
      its diagonal, shape `(emission_dim,)`.
    """

    weights: Float[Array, "*ntime emission_dim state_dim"]
    bias: Float[Array, "*ntime emission_dim"] | None
    input_weights: Float[Array, "*ntime emission_dim input_dim"] | None
    cov: Float[Array, "*ntime emission_dim emission_dim"] | Float[Array, "*ntime emission_dim"]


class LGSSMParams(eqx.Module):
    r"""Parameters of a linear-Gaussian SSM, with the structure of dynamax's
    `ParamsLGSSM` (`params.initial.mean`, `params.dynamics.weights`, ...).

    Any object with that structure (a dynamax `ParamsLGSSM` included) can be passed
    to the `lgssm_*` functions instead.

    **Arguments:** (all arrays; the optional ones default to zero)

    - `initial_mean`: $\mu_0$, shape `(state_dim,)`.
    - `initial_cov`: $\Sigma_0$, `(state_dim, state_dim)`.
    - `dynamics_weights`: $F$, `([T,] state_dim, state_dim)`.
    - `dynamics_cov`: $Q$, `([T,] state_dim, state_dim)`.
    - `emissions_weights`: $H$, `([T,] emission_dim, state_dim)`.
    - `emissions_cov`: $R$, `([T,] emission_dim, emission_dim)` or `([T,] emission_dim)`.
    - `dynamics_bias`: $b$, `([T,] state_dim)`.
    - `dynamics_input_weights`: $B$, `([T,] state_dim, input_dim)`.
    - `emissions_bias`: $d$, `([T,] emission_dim)`.
    - `emissions_input_weights`: $D$, `([T,] emission_dim, input_dim)`.

    **Fields:**

    - `initial`: an `LGSSMInitial` (`mean`, `cov`).
    - `dynamics`: an `LGSSMDynamics` (`weights`, `bias`, `input_weights`, `cov`).
    - `emissions`: an `LGSSMEmissions` (`weights`, `bias`, `input_weights`, `cov`).
    """

    initial: LGSSMInitial
    dynamics: LGSSMDynamics
    emissions: LGSSMEmissions

    def __init__(
        self,
        initial_mean: ArrayLike,
        initial_cov: ArrayLike,
        dynamics_weights: ArrayLike,
        dynamics_cov: ArrayLike,
        emissions_weights: ArrayLike,
        emissions_cov: ArrayLike,
        dynamics_bias: ArrayLike | None = None,
        dynamics_input_weights: ArrayLike | None = None,
        emissions_bias: ArrayLike | None = None,
        emissions_input_weights: ArrayLike | None = None,
    ):
        opt = lambda x: None if x is None else jnp.asarray(x)  # noqa: E731
        self.initial = LGSSMInitial(jnp.asarray(initial_mean), jnp.asarray(initial_cov))
        self.dynamics = LGSSMDynamics(
            jnp.asarray(dynamics_weights),
            opt(dynamics_bias),
            opt(dynamics_input_weights),
            jnp.asarray(dynamics_cov),
        )
        self.emissions = LGSSMEmissions(
            jnp.asarray(emissions_weights),
            opt(emissions_bias),
            opt(emissions_input_weights),
            jnp.asarray(emissions_cov),
        )


class PosteriorGSSMFiltered(eqx.Module):
    r"""The filtering posterior (field names as dynamax's `PosteriorGSSMFiltered`).

    **Fields:**

    - `marginal_loglik`: $\log p(y_{0:T-1} \mid u_{0:T-1})$, shape `()`.
    - `filtered_means`: $\mathbb{E}[z_t \mid y_{0:t}]$, shape `(T, state_dim)`.
    - `filtered_covariances`: $\mathrm{Cov}[z_t \mid y_{0:t}]$, shape
      `(T, state_dim, state_dim)`.
    - `predicted_means`: $\mathbb{E}[z_{t+1} \mid y_{0:t}]$ for
      $t = 0, \dots, T-2$, shape `(T-1, state_dim)`.
    - `predicted_covariances`: $\mathrm{Cov}[z_{t+1} \mid y_{0:t}]$ for
      $t = 0, \dots, T-2$, shape `(T-1, state_dim, state_dim)`.
    """

    marginal_loglik: Float[Array, ""]
    filtered_means: Float[Array, "ntime state_dim"]
    filtered_covariances: Float[Array, "ntime state_dim state_dim"]
    predicted_means: Float[Array, "ntime_minus1 state_dim"]
    predicted_covariances: Float[Array, "ntime_minus1 state_dim state_dim"]


class PosteriorGSSMSmoothed(eqx.Module):
    r"""The smoothing posterior (field names as dynamax's `PosteriorGSSMSmoothed`).

    **Fields:**

    - `marginal_loglik`: $\log p(y_{0:T-1} \mid u_{0:T-1})$, shape `()`.
    - `filtered_means`: $\mathbb{E}[z_t \mid y_{0:t}]$, shape `(T, state_dim)`.
    - `filtered_covariances`: $\mathrm{Cov}[z_t \mid y_{0:t}]$, shape
      `(T, state_dim, state_dim)`.
    - `smoothed_means`: $\mathbb{E}[z_t \mid y_{0:T-1}]$, shape `(T, state_dim)`.
    - `smoothed_covariances`: $\mathrm{Cov}[z_t \mid y_{0:T-1}]$, shape
      `(T, state_dim, state_dim)`.
    - `smoothed_cross_covariances`: the cross moments
      $\mathbb{E}[z_t z_{t+1}^\top \mid y_{0:T-1}]$ for $t = 0, \dots, T-2$, shape
      `(T-1, state_dim, state_dim)`. As in dynamax these are *second moments*; the
      cross-covariance is
      `smoothed_cross_covariances[t] - outer(smoothed_means[t], smoothed_means[t+1])`.
    """

    marginal_loglik: Float[Array, ""]
    filtered_means: Float[Array, "ntime state_dim"]
    filtered_covariances: Float[Array, "ntime state_dim state_dim"]
    smoothed_means: Float[Array, "ntime state_dim"]
    smoothed_covariances: Float[Array, "ntime state_dim state_dim"]
    smoothed_cross_covariances: Float[Array, "ntime_minus1 state_dim state_dim"]


# ---------------------------------------------------------------------------
# Reading and checking the model
# ---------------------------------------------------------------------------


class _Model(eqx.Module):
    """The model flattened into per-step quantities; `tv[name]` says whether the
    array `name` has a leading time axis."""

    m0: Array
    P0: Array
    F: Array
    c: Array
    Q: Array
    H: Array
    R: Array
    y: Array
    observed: Array
    tv: dict[str, bool] = eqx.field(static=True)

    def at(self, name: str, start: int) -> Array:
        """The array `name` from time `start` on (unchanged if fixed)."""
        x = getattr(self, name)
        return x[start:] if self.tv[name] else x

    def axis(self, name: str) -> int | None:
        return 0 if self.tv[name] else None


def _shape_str(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _read(x: Any, name: str, shapes: list[tuple[int, ...]], dtype) -> tuple[Array, bool]:
    """`x` as an array of `dtype`, checking that its shape is `shapes[0]` (fixed) or
    `shapes[1]` (time-varying)."""
    shape = tuple(np.shape(x))
    for time_varying, want in zip((False, True), shapes):
        if shape == want:
            return jnp.asarray(x, dtype), time_varying
    wants = " or ".join(_shape_str(s) for s in shapes)
    raise ValueError(f"`{name}` must have shape {wants}; got shape {_shape_str(shape)}.")


def _concrete(x: Any) -> np.ndarray | None:
    """`x` as a NumPy array if its value is known at trace time, else None."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _check(x: Array, bad: Any, message: str) -> Array:
    """Raise `ValueError(message)` if `bad` is known to be true now; if it is only
    known at run time, attach an `eqx.error_if` to `x`. Returns `x`."""
    concrete = _concrete(bad)
    if concrete is None:
        return eqx.error_if(x, bad, message)
    if bool(concrete):
        raise ValueError(message)
    return x


def _check_symmetric(x: Array, name: str) -> Array:
    """Check that `x` is symmetric up to rounding; return its symmetric part."""
    xt = jnp.swapaxes(x, -1, -2)
    tol = 1000 * jnp.finfo(x.dtype).eps
    value = _concrete(x)
    if value is not None:  # decide with NumPy: jnp would be staged under jit
        bad = np.max(np.abs(value - np.swapaxes(value, -1, -2)), initial=0) > float(tol) * np.max(
            np.abs(value), initial=0
        )
    else:
        bad = jnp.max(jnp.abs(x - xt), initial=0) > tol * jnp.max(jnp.abs(x), initial=0)
    x = _check(x, bad, f"`{name}` must be symmetric (a covariance matrix).")
    return 0.5 * (x + xt)


def _dtype(*xs) -> Any:
    dtype = jnp.result_type(*[x for x in xs if x is not None])
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    return dtype


def _model(params: Any, emissions: Any, inputs: Any) -> _Model:
    """Check shapes and flatten `params`, `emissions`, `inputs` into a `_Model`."""
    if np.ndim(emissions) != 2:
        raise ValueError(
            "`emissions` must have shape (num_timesteps, emission_dim); "
            f"got shape {_shape_str(np.shape(emissions))}."
        )
    T, k = np.shape(emissions)
    if T == 0:
        raise ValueError("`emissions` must have at least one time step; got shape (0, ...).")
    ini, dyn, emi = params.initial, params.dynamics, params.emissions
    if np.ndim(ini.mean) != 1:
        raise ValueError(
            "`params.initial.mean` must have shape (state_dim,); "
            f"got shape {_shape_str(np.shape(ini.mean))}."
        )
    (n,) = np.shape(ini.mean)
    if inputs is not None and (np.ndim(inputs) != 2 or np.shape(inputs)[0] != T):
        raise ValueError(
            f"`inputs` must have shape ({T}, input_dim) to match `emissions`; "
            f"got shape {_shape_str(np.shape(inputs))}."
        )
    m = None if inputs is None else np.shape(inputs)[1]
    dtype = _dtype(
        emissions, inputs, *[x for x in jax.tree.leaves((ini, dyn, emi)) if hasattr(x, "dtype")]
    )

    def read(x, name, *shape):
        return _read(x, f"params.{name}", [shape, (T, *shape)], dtype)

    m0, _ = _read(ini.mean, "params.initial.mean", [(n,)], dtype)
    P0, _ = _read(ini.cov, "params.initial.cov", [(n, n)], dtype)
    F, F_tv = read(dyn.weights, "dynamics.weights", n, n)
    Q, Q_tv = read(dyn.cov, "dynamics.cov", n, n)
    H, H_tv = read(emi.weights, "emissions.weights", k, n)
    R_shape = np.shape(emi.cov)
    if R_shape in ((k,), (T, k)):
        R, R_tv = read(emi.cov, "emissions.cov", k)
    elif len(R_shape) == 3 or R_shape == (k, k):
        R, R_tv = read(emi.cov, "emissions.cov", k, k)
    else:
        raise ValueError(
            f"`params.emissions.cov` must have shape ({k}, {k}), ({k},), ({T}, {k}, {k}) "
            f"or ({T}, {k}); got shape {_shape_str(R_shape)}."
        )
    P0 = _check_symmetric(P0, "params.initial.cov")
    Q = _check_symmetric(Q, "params.dynamics.cov")
    if R.ndim - R_tv == 2:
        R = _check_symmetric(R, "params.emissions.cov")

    # Offsets: c_t = B_t u_t + b_t (dynamics), r_t = D_t u_t + d_t (emissions).
    def offset(bias, weights, name, dim):
        out, tv = jnp.zeros((dim,), dtype), False
        if bias is not None:
            out, tv = read(bias, f"{name}.bias", dim)
        if inputs is not None and weights is not None:
            W, W_tv = read(weights, f"{name}.input_weights", dim, m)
            u = jnp.asarray(inputs, dtype)
            out = out + (jnp.einsum("tij,tj->ti", W, u) if W_tv else u @ W.T)
            tv = True
        return out, tv

    c, c_tv = offset(dyn.bias, dyn.input_weights, "dynamics", n)
    r, _ = offset(emi.bias, emi.input_weights, "emissions", k)
    y = jnp.asarray(emissions, dtype)
    value = _concrete(emissions)
    if value is not None:
        nan = np.isnan(np.asarray(value, dtype))
        partial = bool(np.any(nan.any(axis=1) & ~nan.all(axis=1)))
        observed = jnp.asarray(~nan.all(axis=1))
    else:
        missing = jnp.isnan(y)
        observed = ~jnp.all(missing, axis=1)
        partial = jnp.any(missing & observed[:, None])
    msg = "`emissions` rows must be all NaN (missing) or have no NaN; got a partly NaN row."
    y = _check(y, partial, msg)
    y = jnp.where(observed[:, None], y - r, 0)
    return _Model(
        m0=m0,
        P0=P0,
        F=F,
        c=c,
        Q=Q,
        H=H,
        R=R,
        y=y,
        observed=observed,
        tv=dict(F=F_tv, c=c_tv, Q=Q_tv, H=H_tv, R=R_tv, y=True, observed=True),
    )


def _index(x: Array, tv: bool, t: int) -> Array:
    return x[t] if tv else x


# ---------------------------------------------------------------------------
# Filter
# ---------------------------------------------------------------------------


def _filter_elements(md: _Model) -> FilterElement:
    """All $T$ filtering elements. The observation-independent halves (`filter_gain`)
    are computed for the first step ($F = 0$, $c = m_0$, $Q = P_0$) and the fixed
    later steps once (or per step, if any of $F, Q, H, R$ varies in time)."""
    T = md.y.shape[0]
    any_tv = any(md.tv[name] for name in "FQHR")
    length = T if any_tv else 2

    def stack(name, first):
        x = getattr(md, name)
        if md.tv[name]:
            rest = x[1:]
        else:
            rest = jnp.broadcast_to(x, (length - 1, *x.shape))
        return jnp.concatenate([first[None], rest])

    H0, R0 = _index(md.H, md.tv["H"], 0), _index(md.R, md.tv["R"], 0)
    gains = jax.vmap(filter_gain)(
        stack("F", jnp.zeros_like(md.P0)), stack("Q", md.P0), stack("H", H0), stack("R", R0)
    )
    c = (
        stack("c", md.m0)
        if md.tv["c"]
        else jnp.concatenate([md.m0[None], jnp.broadcast_to(md.c, (T - 1, *md.c.shape))])
    )
    if any_tv:
        return jax.vmap(filter_element)(gains, c, md.y, md.observed)

    def element(first, c, y, observed):
        gain = jax.tree.map(lambda g: jnp.where(first, g[0], g[1]), gains)
        return filter_element(gain, c, y, observed)

    return jax.vmap(element)(jnp.arange(T) == 0, c, md.y, md.observed)


def _filter(md: _Model, method) -> FilterState:
    """Filtered means, covariances and running log-likelihoods."""
    n = md.m0.shape[0]
    init = FilterState(
        mean=jnp.zeros((n,), md.m0.dtype),
        cov=jnp.zeros((n, n), md.m0.dtype),
        loglik=jnp.zeros((), md.m0.dtype),
    )
    return scan(KalmanFilter(), _filter_elements(md), init=init, method=method)


def _predict(model: _Model, means: Array, covs: Array) -> tuple[Array, Array]:
    r"""$\mathbb{E}$, $\mathrm{Cov}$ of $z_{t+1} \mid y_{0:t}$ for $t < T-1$."""

    def one(m, P, F, c, Q):
        return F @ m + c, F @ P @ F.T + Q

    ax = (0, 0, model.axis("F"), model.axis("c"), model.axis("Q"))
    mean, cov = jax.vmap(one, in_axes=ax)(
        means[:-1], covs[:-1], model.at("F", 1), model.at("c", 1), model.at("Q", 1)
    )
    return mean, 0.5 * (cov + jnp.swapaxes(cov, -1, -2))


def _marginal_loglik(model: _Model, pred_means: Array, pred_covs: Array) -> Array:
    r"""$\log p(y_{0:T-1}) = \sum_t \log \mathcal{N}(y_t \mid H_t \hat z_t + r_t,
    H_t \hat P_t H_t^\top + R_t)$ over the observed rows, from the one-step predictions
    $\hat z_t$, $\hat P_t$ (the prior at $t = 0$): a sum of small innovations,
    accurate in float32 however large the states are. (The log-normalisers carried
    by `KalmanFilter` give the same value in exact arithmetic, but as differences of
    quadratic forms in the states themselves.)"""
    means = jnp.concatenate([model.m0[None], pred_means])
    covs = jnp.concatenate([model.P0[None], pred_covs])

    def one(m, P, H, R, y, observed):
        S = H @ P @ H.T + (jnp.diag(R) if R.ndim == 1 else R)
        L = cholesky(S)
        w = lower_inverse(L) @ (y - H @ m)
        log2pi = jnp.log(2 * jnp.pi).astype(y.dtype)
        ll = -0.5 * (w @ w) - jnp.sum(jnp.log(jnp.diagonal(L))) - 0.5 * y.shape[-1] * log2pi
        return jnp.where(observed, ll, 0)

    ax = (0, 0, model.axis("H"), model.axis("R"), 0, 0)
    lls = jax.vmap(one, in_axes=ax)(means, covs, model.H, model.R, model.y, model.observed)
    return jnp.sum(lls)


def _check_method(method):
    as_method(method)  # raises ValueError / TypeError for a bad `method`


def lgssm_filter(
    params: LGSSMParams | Any,
    emissions: Float[ArrayLike, "ntime emission_dim"],
    inputs: Float[ArrayLike, "ntime input_dim"] | None = None,
    *,
    method: str | AbstractScanMethod = "auto",
) -> PosteriorGSSMFiltered:
    r"""Kalman filter: filtered and one-step predicted marginals, and the marginal
    log-likelihood.

    A scan of `scanalg.monoids.KalmanFilter` elements (Särkkä & García-Fernández,
    2021) from the zero state; with `method="sequential"` each step is one
    Kalman predict-and-update. The marginal log-likelihood is then summed from the
    one-step prediction errors (in parallel over time),

    $$\log p(y_{0:T-1}) = \sum_t \log \mathcal{N}(y_t \mid \hat y_t, S_t),$$

    which stays accurate in float32 when the states are far from the origin (the
    log-normalisers carried by the scan are exact too, but lose precision there).

    **Arguments:**

    - `params`: an `LGSSMParams` (or a dynamax `ParamsLGSSM`, or anything with the
      same attributes).
    - `emissions`: observations $y_{0:T-1}$, shape `(T, emission_dim)`; a row that is
      all NaN is missing.
    - `inputs`: optional inputs $u_{0:T-1}$, shape `(T, input_dim)` (none: zero).
    - `method`: the scan method (see `scanalg.scan`).

    **Returns:**

    A `PosteriorGSSMFiltered` with
    $\log p(y_{0:T-1})$, the filtered marginals $p(z_t \mid y_{0:t})$ and the
    predicted marginals $p(z_{t+1} \mid y_{0:t})$.
    """
    _check_method(method)
    model = _model(params, emissions, inputs)
    states = _filter(model, method)
    pm, pc = _predict(model, states.mean, states.cov)
    return PosteriorGSSMFiltered(
        marginal_loglik=_marginal_loglik(model, pm, pc),
        filtered_means=states.mean,
        filtered_covariances=states.cov,
        predicted_means=pm,
        predicted_covariances=pc,
    )


# ---------------------------------------------------------------------------
# Smoother and sampler
# ---------------------------------------------------------------------------


def _smoother_elements(model: _Model, means: Array, covs: Array) -> SmootherElement:
    """RTS elements $(E_t, g_t, L_t)$; the last one is $(0, m_{T-1}, P_{T-1})$."""
    last = SmootherElement(E=jnp.zeros_like(covs[-1]), g=means[-1], L=covs[-1])
    if means.shape[0] == 1:
        return jax.tree.map(lambda a: a[None], last)
    ax = (0, 0, model.axis("F"), model.axis("c"), model.axis("Q"))
    rest = jax.vmap(rts_smoother_elements, in_axes=ax)(
        means[:-1], covs[:-1], model.at("F", 1), model.at("c", 1), model.at("Q", 1)
    )
    return jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]]), rest, last)


def lgssm_smoother(
    params: LGSSMParams | Any,
    emissions: Float[ArrayLike, "ntime emission_dim"],
    inputs: Float[ArrayLike, "ntime input_dim"] | None = None,
    *,
    method: str | AbstractScanMethod = "auto",
) -> PosteriorGSSMSmoothed:
    r"""Rauch–Tung–Striebel smoother: filtered and smoothed marginals, smoothed
    cross moments and the marginal log-likelihood.

    The filter of `lgssm_filter`, then a reverse scan of
    `scanalg.monoids.RTSSmoother` elements
    $p(z_t \mid z_{t+1}, y_{0:t}) = \mathcal{N}(E_t z_{t+1} + g_t, L_t)$.

    **Arguments:** as for `lgssm_filter`.

    **Returns:**

    A `PosteriorGSSMSmoothed`: the marginals $p(z_t \mid y_{0:T-1})$ and the cross
    moments $\mathbb{E}[z_t z_{t+1}^\top \mid y_{0:T-1}]$ (as in dynamax).
    """
    _check_method(method)
    model = _model(params, emissions, inputs)
    filt = _filter(model, method)
    elems = _smoother_elements(model, filt.mean, filt.cov)
    n = model.m0.shape[0]
    init = SmootherState(jnp.zeros((n,), filt.mean.dtype), jnp.zeros((n, n), filt.mean.dtype))
    smooth = scan(RTSSmoother(), elems, init=init, reverse=True, method=method)
    ms, Ps = smooth.mean, smooth.cov
    cross = elems.E[:-1] @ Ps[1:] + ms[:-1, :, None] * ms[1:, None, :]
    return PosteriorGSSMSmoothed(
        marginal_loglik=_marginal_loglik(model, *_predict(model, filt.mean, filt.cov)),
        filtered_means=filt.mean,
        filtered_covariances=filt.cov,
        smoothed_means=ms,
        smoothed_covariances=Ps,
        smoothed_cross_covariances=cross,
    )


def _sqrt_psd(L: Float[Array, "n n"]) -> Float[Array, "n n"]:
    """A Cholesky factor of the PSD matrix `L`, with a relative jitter of a few ulps so
    that singular (but PSD) matrices factorise."""
    scale = jnp.maximum(jnp.max(jnp.diagonal(L)), jnp.finfo(L.dtype).tiny)
    jitter = 10 * jnp.finfo(L.dtype).eps * scale
    return cholesky(L + jitter * jnp.eye(L.shape[-1], dtype=L.dtype))


def lgssm_posterior_sample(
    key: PRNGKeyArray,
    params: LGSSMParams | Any,
    emissions: Float[ArrayLike, "ntime emission_dim"],
    inputs: Float[ArrayLike, "ntime input_dim"] | None = None,
    *,
    method: str | AbstractScanMethod = "auto",
    num_samples: int | None = None,
) -> Float[Array, "ntime state_dim"] | Float[Array, "num_samples ntime state_dim"]:
    r"""Draw from the posterior $p(z_{0:T-1} \mid y_{0:T-1})$ (forward filtering,
    backward sampling).

    With the smoothing elements $(E_t, g_t, L_t)$ and standard normal draws
    $\varepsilon_t$ (taken from `key` before the scan), the sample solves the
    backward recurrence

    $$z_t = E_t z_{t+1} + g_t + L_t^{1/2} \varepsilon_t,$$

    a reverse scan of `Dual(Affine())` (affine maps composed backwards). All noise is
    drawn up front, so the same `key` gives the same sample for every method (up to
    rounding).

    **Arguments:**

    - `key`: a `jax.random` key.
    - `params`, `emissions`, `inputs`, `method`: as for `lgssm_filter`.
    - `num_samples`: how many samples (none: one, without a sample axis).

    **Returns:**

    The sample(s), shape `(T, state_dim)` or `(num_samples, T, state_dim)`.
    """
    _check_method(method)
    if num_samples is not None and not (isinstance(num_samples, int) and num_samples >= 1):
        raise ValueError(f"`num_samples` must be None or an int >= 1; got {num_samples!r}.")
    model = _model(params, emissions, inputs)
    filt = _filter(model, method)
    elems = _smoother_elements(model, filt.mean, filt.cov)
    roots = jax.vmap(_sqrt_psd)(elems.L)
    T, n = filt.mean.shape

    def one(k):
        eps = jax.random.normal(k, (T, n), filt.mean.dtype)
        h = elems.g + jnp.einsum("tij,tj->ti", roots, eps)
        init = jnp.zeros((n,), h.dtype)
        return scan(Dual(Affine()), (elems.E, h), init=init, reverse=True, method=method)

    if num_samples is None:
        return one(key)
    return jax.vmap(one)(jax.random.split(key, num_samples))
