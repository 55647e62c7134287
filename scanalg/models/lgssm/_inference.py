r"""Inference in linear-Gaussian state-space models, on any scan method.

The model (dynamax's `ParamsLGSSM` conventions, time index $t = 0, \dots, T-1$):

$$\begin{aligned}
z_0 &\sim \mathcal{N}(\mu_0, \Sigma_0), \\
z_t \mid z_{t-1} &\sim \mathcal{N}(F_t z_{t-1} + B_t u_t + b_t,\; Q_t), && t \ge 1,\\
y_t \mid z_t &\sim \mathcal{N}(H_t z_t + D_t u_t + d_t,\; R_t).
\end{aligned}$$

Each parameter is either fixed or time-varying (an extra leading time axis of
length $T$; for the dynamics, entry $t$ is the transition *into* $z_t$, so entry 0
is unused). Shapes are read by rank alone: the emission covariance is a fixed
diagonal `(k,)`, a fixed full matrix `(k, k)` or time-varying full matrices
`(T, k, k)`. NaN entries of `emissions` are missing: each step conditions on its
observed components only (the missing ones are marginalised), and a row that is all
NaN is a prediction only.

`lgssm_filter`, `lgssm_smoother` and `lgssm_posterior_sample` build the elements
of `scanalg.lgssm.KalmanFilter`, `RTSSmoother` and `Dual(Affine())`, call
`scanalg.scan` with the `method` given, and read the results out; every method
returns the same answer up to float rounding. Each is compiled once per shape,
dtype and static argument (`equinox.filter_jit`).

**Values.** Covariances must be symmetric positive *semi*-definite: singular $Q_t$
and $\Sigma_0$ (a known start, noise-free directions) are legal and give finite
answers. The innovation covariance of each step, $H_t Q_t H_t^\top + R_t$ (with
$\Sigma_0$ at $t = 0$), must be positive definite on the observed components.
Anything else (an indefinite covariance, a negative variance, NaN or $\pm\infty$ in a
parameter, $\pm\infty$ in `emissions`) raises an `equinox.error_if` error that names
the parameter.

**Numerics.** The model is first *centred*: with a reference trajectory $r_t$, a
state that explains the latest observation of each component (least squares from
the prior mean, carried over missing steps), the scan runs on $z_t - r_t$, whose
means are of the size of the noise rather than of the states. In float32, states
far from the origin (a random walk at $10^6$) keep their precision, and the marginal
log-likelihood, summed from the per-step prediction errors, is as accurate as a
sequential Kalman filter's. The centring is exact (it changes nothing but
rounding).
"""

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ..._linalg import (
    eye_like,
    gaussian_log_density,
    lower_inverse,
    psd_cholesky,
    psd_inv_logdet,
    symmetrize,
)
from ..._methods import AbstractScanMethod, as_method
from ..._scan import scan
from ..._validate import (
    any_failed,
    asymmetric,
    attach_checks,
    checks_arguments,
    float_dtype,
    nonfinite,
    positive_count,
)
from ...monoids import Affine, Dual
from ._dynamax import dynamax_signature
from ._monoids import (
    FilterElement,
    FilterState,
    KalmanFilter,
    RTSSmoother,
    SmootherElement,
    SmootherState,
    filter_element,
    filter_gain,
    mask_emission,
    rts_smoother_elements,
)
from ._params import (
    LGSSMDynamics as LGSSMDynamics,
    LGSSMEmissions as LGSSMEmissions,
    LGSSMInitial as LGSSMInitial,
    LGSSMParams as LGSSMParams,
)

# ---------------------------------------------------------------------------
# Parameters and results
# ---------------------------------------------------------------------------


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
    """The centred model as per-step quantities; `tv[name]` says whether the array
    `name` has a leading time axis.

    `ref` is the reference trajectory $r_t$: the model here is that of $z_t - r_t$
    (initial mean `m0`, offsets `c`, observations `y`), and `ref` is added back to
    every mean. `mask[t, i]` says whether component $i$ of $y_t$ is observed; `y`
    is zero where it is not. `bad` says whether a value check of `_model` failed
    (later checks, whose messages assume valid parameters, are then not reported).
    """

    m0: Array
    P0: Array
    F: Array
    c: Array
    Q: Array
    H: Array
    R: Array
    y: Array
    mask: Array
    ref: Array
    bad: Array
    tv: dict[str, bool] = eqx.field(static=True)

    def at(self, name: str, start: int) -> Array:
        """The array `name` from time `start` on (unchanged if fixed)."""
        x = getattr(self, name)
        return x[start:] if self.tv[name] else x

    def axis(self, name: str) -> int | None:
        return 0 if self.tv[name] else None

    def steps(self, name: str, first: Array) -> Array:
        """The array `name` for every step, `first` at step 0, shape `(T, ...)`."""
        x = getattr(self, name)
        T = self.y.shape[0]
        rest = x[1:] if self.tv[name] else jnp.broadcast_to(x, (T - 1, *x.shape))
        return jnp.concatenate([first[None], rest])


def _shape_str(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _time_varying(x: Any, name: str, shapes: list[tuple[int, ...]]) -> bool:
    """Whether `x` has shape `shapes[1]` (time-varying) rather than `shapes[0]` (fixed);
    a `ValueError` naming `name` if it has neither."""
    shape = tuple(np.shape(x))
    for time_varying, want in zip((False, True), shapes):
        if shape == want:
            return time_varying
    wants = " or ".join(_shape_str(s) for s in shapes)
    raise ValueError(f"`{name}` must have shape {wants}; got shape {_shape_str(shape)}.")


class _Shapes(NamedTuple):
    T: int
    k: int
    n: int
    m: int | None
    tv: dict[str, bool]  # "dynamics.weights" etc.: time-varying or not


def _shapes(params: Any, emissions: Any, inputs: Any) -> _Shapes:
    """Check every shape (a `ValueError` naming the argument and the shapes it may
    have); which parameters are time-varying. Run before tracing (`_checked`)."""
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
    _time_varying(ini.cov, "params.initial.cov", [(n, n)])
    fields = {
        "dynamics.weights": (dyn.weights, (n, n)),
        "dynamics.cov": (dyn.cov, (n, n)),
        "emissions.weights": (emi.weights, (k, n)),
        "dynamics.bias": (dyn.bias, (n,)),
        "emissions.bias": (emi.bias, (k,)),
    }
    if inputs is not None:
        fields["dynamics.input_weights"] = (dyn.input_weights, (n, m))
        fields["emissions.input_weights"] = (emi.input_weights, (k, m))
    tv = {
        name: _time_varying(x, f"params.{name}", [shape, (T, *shape)])
        for name, (x, shape) in fields.items()
        if x is not None
    }
    R_shape = tuple(np.shape(emi.cov))
    if R_shape == (k,):
        tv["emissions.cov"] = False
    elif len(R_shape) != 1 and R_shape in ((k, k), (T, k, k)):
        tv["emissions.cov"] = len(R_shape) == 3
    else:
        hint = ""
        if R_shape == (T, k):
            hint = (
                " Shapes are read by rank: a time-varying diagonal covariance is given as "
                "diagonal matrices, e.g. `jax.vmap(jnp.diag)(cov)`."
            )
        raise ValueError(
            f"`params.emissions.cov` must have shape ({k},) (diagonal), ({k}, {k}) or "
            f"({T}, {k}, {k}); got shape {_shape_str(R_shape)}.{hint}"
        )
    return _Shapes(T, k, n, m, tv)


def _covariance_checks(covs: dict[str, Array]) -> list[tuple[Array, str]]:
    """Each array of `covs` (name: a matrix or a stack of them) is finite, symmetric and
    positive semi-definite. One batched factorisation serves all of them (each
    matrix zero-padded to the largest size, which keeps it PSD or not)."""
    size = max(x.shape[-1] for x in covs.values())
    flat = [x.reshape(-1, *x.shape[-2:]) for x in covs.values()]
    pad = lambda x: jnp.pad(x, ((0, 0), (0, size - x.shape[-1]), (0, size - x.shape[-1])))  # noqa: E731
    stacked = jnp.concatenate([pad(symmetrize(x)) for x in flat])
    not_psd = jax.vmap(lambda S: psd_cholesky(S)[1])(stacked)
    bounds = np.cumsum([0] + [x.shape[0] for x in flat])
    checks = []
    for (name, x), lo, hi in zip(covs.items(), bounds[:-1], bounds[1:]):
        checks += [
            (nonfinite(x), f"`{name}` contains NaN or ±inf."),
            (asymmetric(x), f"`{name}` must be symmetric (a covariance matrix)."),
            (
                jnp.any(not_psd[lo:hi]),
                f"`{name}` must be positive semi-definite (a covariance matrix); it has a "
                "negative eigenvalue.",
            ),
        ]
    return checks


def _ridge_inverse(H: Float[Array, "k n"]) -> Float[Array, "n k"]:
    r"""$W = H^\top (H H^\top + \lambda I)^{-1}$ (or its $n \times n$ form when
    $k > n$), $\lambda$ a relative $\sqrt{\epsilon}$: a bounded least-squares inverse of
    $H$, for any rank."""
    k, n = H.shape
    G = H @ H.T if k <= n else H.T @ H
    dtype = H.dtype
    lam = jnp.sqrt(jnp.finfo(dtype).eps) * jnp.trace(G) / G.shape[0] + jnp.finfo(dtype).tiny
    G_inv, _ = psd_inv_logdet(G + lam * jnp.eye(G.shape[0], dtype=dtype))
    return H.T @ G_inv if k <= n else G_inv @ H.T


def _reference(m0: Array, H: Array, H_tv: bool, y: Array, mask: Array) -> Array:
    r"""The centring trajectory $r_t = m_0 + W_t (\hat y_t - H_t m_0)$, shape `(T, n)`:
    $\hat y_t$ holds the latest observed value of each component (carried over
    missing entries; $H_t m_0$ before the first), $W_t$ a least-squares inverse of
    $H_t$. Any $r_t$ gives the same answer; this one keeps $z_t - r_t$ of the size
    of the noise. Not differentiated (nothing depends on it)."""
    T = y.shape[0]
    time = jnp.broadcast_to(jnp.arange(T)[:, None], y.shape)
    last = jax.lax.cummax(jnp.where(mask, time, -1), axis=0)
    latest = jnp.take_along_axis(jnp.where(mask, y, 0), jnp.maximum(last, 0), axis=0)
    if H_tv:
        prior = jnp.einsum("tkn,n->tk", H, m0)
        resid = jnp.where(last >= 0, latest - prior, 0)
        shift = jnp.einsum("tnk,tk->tn", jax.vmap(_ridge_inverse)(H), resid)
    else:
        resid = jnp.where(last >= 0, latest - (H @ m0)[None, :], 0)
        shift = resid @ _ridge_inverse(H).T
    return jax.lax.stop_gradient(m0[None, :] + shift)


def _model(params: Any, emissions: Any, inputs: Any) -> _Model:
    """Check values (`equinox.error_if`; the shapes were checked before tracing by
    `_shapes`), flatten `params`, `emissions`, `inputs` into per-step quantities and
    centre them (`_Model`)."""
    T, k, n, m, tvs = _shapes(params, emissions, inputs)
    ini, dyn, emi = params.initial, params.dynamics, params.emissions
    leaves = [x for x in jax.tree.leaves((ini, dyn, emi)) if hasattr(x, "dtype")]
    dtype = float_dtype(emissions, *([] if inputs is None else [inputs]), *leaves, family="LGSSM")

    def read(x, name=None):
        return jnp.asarray(x).astype(dtype), tvs.get(name, False)

    m0, _ = read(ini.mean)
    P0, _ = read(ini.cov)
    F, F_tv = read(dyn.weights, "dynamics.weights")
    Q, Q_tv = read(dyn.cov, "dynamics.cov")
    H, H_tv = read(emi.weights, "emissions.weights")
    R, R_tv = read(emi.cov, "emissions.cov")

    covs = {"params.initial.cov": P0, "params.dynamics.cov": Q}
    checks = [
        (nonfinite(m0), "`params.initial.mean` contains NaN or ±inf."),
        (nonfinite(F), "`params.dynamics.weights` contains NaN or ±inf."),
        (nonfinite(H), "`params.emissions.weights` contains NaN or ±inf."),
    ]
    if R.ndim - R_tv == 1:
        checks += [
            (nonfinite(R), "`params.emissions.cov` contains NaN or ±inf."),
            (
                jnp.any(R < 0),
                "`params.emissions.cov` (a diagonal covariance) must be nonnegative; it "
                "has a negative entry.",
            ),
        ]
    else:
        covs["params.emissions.cov"] = R
    checks += _covariance_checks(covs)

    # Offsets: c_t = B_t u_t + b_t (dynamics), r_t = D_t u_t + d_t (emissions).
    def offset(bias, weights, name, dim):
        out, tv = jnp.zeros((dim,), dtype), False
        if bias is not None:
            out, tv = read(bias, f"{name}.bias")
            checks.append((nonfinite(out), f"`params.{name}.bias` contains NaN or ±inf."))
        if inputs is not None and weights is not None:
            W, W_tv = read(weights, f"{name}.input_weights")
            checks.append((nonfinite(W), f"`params.{name}.input_weights` contains NaN or ±inf."))
            u = jnp.asarray(inputs).astype(dtype)
            Wu = jnp.einsum("tij,tj->ti", W, u) if W_tv else u @ W.T
            out = (out if tv else out[None, :]) + Wu
            tv = True
        return out, tv

    c, c_tv = offset(dyn.bias, dyn.input_weights, "dynamics", n)
    r, r_tv = offset(emi.bias, emi.input_weights, "emissions", k)
    if inputs is not None:
        checks.append((nonfinite(jnp.asarray(inputs)), "`inputs` contains NaN or ±inf."))
    y = jnp.asarray(emissions).astype(dtype)
    checks.append((jnp.any(jnp.isinf(y)), "`emissions` contains ±inf (NaN marks a missing entry)."))
    m0 = attach_checks(m0, checks)
    bad = any_failed(checks)
    P0, Q = symmetrize(P0), symmetrize(Q)
    if R.ndim - R_tv == 2:
        R = symmetrize(R)

    mask = ~jnp.isnan(y)
    y = y - (r if r_tv else r[None, :])
    ref = _reference(m0, H, H_tv, y, mask)
    # The model of z_t - ref_t: offsets F_t ref_{t-1} + c_t - ref_t (entry 0 unused),
    # observations y_t - H_t ref_t.
    F_ref = jnp.einsum("tij,tj->ti", F[1:], ref[:-1]) if F_tv else ref[:-1] @ F.T
    c_rest = (c[1:] if c_tv else c[None, :]) + F_ref - ref[1:]
    c = jnp.concatenate([jnp.zeros((1, n), dtype), c_rest])
    H_ref = jnp.einsum("tkn,tn->tk", H, ref) if H_tv else ref @ H.T
    y = jnp.where(mask, y - H_ref, 0)
    return _Model(
        m0=m0 - ref[0],
        P0=P0,
        F=F,
        c=c,
        Q=Q,
        H=H,
        R=R,
        y=y,
        mask=mask,
        ref=ref,
        bad=bad,
        tv=dict(F=F_tv, c=True, Q=Q_tv, H=H_tv, R=R_tv, y=True, mask=True),
    )


# ---------------------------------------------------------------------------
# Filter
# ---------------------------------------------------------------------------


# With fixed parameters, a table of gains by pattern of observed components (all
# 2^k of them, times first step or not) serves every step, up to this many patterns.
_MAX_PATTERNS = 64


def _elements(md: _Model, first, masks, F, Q, H, R, index=None) -> tuple[FilterElement, Array]:
    """The filtering elements from a table of gains, one per entry `(first, masks, F,
    Q, H, R)` (leading axis: the entries); step $t$ uses entry `index[t]` (none: entry
    $t$). Also returns whether a used innovation covariance is singular."""
    H, R, _ = jax.vmap(mask_emission)(H, R, jnp.zeros(masks.shape, md.y.dtype), masks)
    F = jnp.where(first[:, None, None], 0, F)
    Q = jnp.where(first[:, None, None], md.P0[None], Q)
    gains = jax.vmap(filter_gain)(F, Q, H, R)
    if index is not None:
        gains = jax.tree.map(lambda g: g[index], gains)
    elems = jax.vmap(filter_element)(gains, md.steps("c", md.m0), md.y, md.mask)
    return elems, jnp.any(~jnp.isfinite(gains.logdet))


def _elements_per_step(md: _Model) -> tuple[FilterElement, Array]:
    """Each step's element from its own gain: the general case."""
    first = lambda name: getattr(md, name)[0] if md.tv[name] else getattr(md, name)  # noqa: E731
    T = md.y.shape[0]
    steps = [md.steps(name, first(name)) for name in "FQHR"]
    return _elements(md, jnp.arange(T) == 0, md.mask, *steps)


def _elements_by_pattern(md: _Model, patterns: np.ndarray) -> tuple[FilterElement, Array]:
    """For fixed parameters and rows whose observed components are one of `patterns`
    (a static boolean array `(P, k)`): one gain per pattern and first-or-later step."""
    P, k = patterns.shape
    masks = jnp.asarray(np.concatenate([patterns, patterns]))
    first = jnp.asarray(np.repeat([True, False], P))
    params = [jnp.broadcast_to(x, (2 * P, *x.shape)) for x in (md.F, md.Q, md.H, md.R)]
    # The entry of each step: its pattern's number (rows match at most one pattern).
    match = jnp.all(md.mask[:, None, :] == jnp.asarray(patterns)[None, :, :], axis=2)
    later = (jnp.arange(md.y.shape[0]) > 0).astype(jnp.int32)
    index = later * P + jnp.argmax(match, axis=1).astype(jnp.int32)
    return _elements(md, first, masks, *params, index=index)


def _filter_elements(md: _Model) -> FilterElement:
    r"""All $T$ filtering elements, with the check that every innovation covariance
    is nonsingular.

    Each step's gain depends on the parameters and on which components are observed.
    With time-varying $F, Q, H, R$ it is computed per step. With fixed ones it comes
    from a table: every pattern of observed components when there are at most
    `_MAX_PATTERNS` ($k \le 6$); otherwise all and none, and per step (chosen at run
    time) if some row is partly observed."""
    T, k = md.mask.shape
    if any(md.tv[name] for name in "FQHR"):
        elems, singular = _elements_per_step(md)
    elif 2**k <= _MAX_PATTERNS:
        patterns = (np.arange(2**k)[:, None] >> np.arange(k)[None, :]) & 1 == 1
        elems, singular = _elements_by_pattern(md, patterns)
    else:
        whole = np.array([[True] * k, [False] * k])
        partial = jnp.any(jnp.any(md.mask, axis=1) & ~jnp.all(md.mask, axis=1))
        by_row = lambda md: _elements_by_pattern(md, whole)  # noqa: E731
        elems, singular = jax.lax.cond(partial, _elements_per_step, by_row, md)
    message = (
        "`params.emissions.cov`: the innovation covariance H Q H^T + R (H P0 H^T + R at "
        "t = 0) of the observed components is singular at some step; R must be positive "
        "definite where H Q H^T is not."
    )
    b = attach_checks(elems.b, [(singular & ~md.bad, message)])
    return eqx.tree_at(lambda e: e.b, elems, b)


def _filter(md: _Model, method) -> FilterState:
    """Filtered means (centred), covariances and running log-likelihoods."""
    n = md.m0.shape[0]
    init = FilterState(
        mean=jnp.zeros((n,), md.m0.dtype),
        cov=jnp.zeros((n, n), md.m0.dtype),
        loglik=jnp.zeros((), md.m0.dtype),
    )
    return scan(KalmanFilter(), _filter_elements(md), init=init, method=method)


def _predict(model: _Model, means: Array, covs: Array) -> tuple[Array, Array]:
    r"""Centred $\mathbb{E}$ and $\mathrm{Cov}$ of $z_{t+1} \mid y_{0:t}$ for $t < T-1$."""

    def one(m, P, F, c, Q):
        return F @ m + c, symmetrize(F @ P @ F.T) + Q

    ax = (0, 0, model.axis("F"), 0, model.axis("Q"))
    return jax.vmap(one, in_axes=ax)(
        means[:-1], covs[:-1], model.at("F", 1), model.c[1:], model.at("Q", 1)
    )


def _marginal_loglik(model: _Model, pred_means: Array, pred_covs: Array) -> Array:
    r"""$\log p(y_{0:T-1}) = \sum_t \log \mathcal{N}(y_t \mid H_t \hat z_t + r_t,
    H_t \hat P_t H_t^\top + R_t)$ over the observed components, from the one-step
    predictions $\hat z_t$, $\hat P_t$ (the prior at $t = 0$): a sum of small
    innovations (of the centred model), accurate in float32 over long sequences. (The
    log-normalisers carried by `KalmanFilter` give the same value in exact
    arithmetic, but as differences of quadratic forms in the states.)"""
    means = jnp.concatenate([model.m0[None], pred_means])
    covs = jnp.concatenate([model.P0[None], pred_covs])

    def one(m, P, H, R, y, mask):
        # The covariance of the observed components, a unit variance for the others
        # (as `mask_emission`, without a masked copy of H per step).
        S = symmetrize(H @ P @ H.T) + (jnp.diag(R) if R.ndim == 1 else R)
        S = jnp.where(mask[:, None] & mask[None, :], S, eye_like(S))
        L, _ = psd_cholesky(S)
        w = lower_inverse(L) @ jnp.where(mask, y - H @ m, 0)
        logdet = 2 * jnp.sum(jnp.log(jnp.diagonal(L)))
        return gaussian_log_density(w @ w, logdet, jnp.sum(mask))

    ax = (0, 0, model.axis("H"), model.axis("R"), 0, 0)
    # XLA's reduction is pairwise: rounding O(log T) ulps, not the O(T) of a running sum.
    return jnp.sum(jax.vmap(one, in_axes=ax)(means, covs, model.H, model.R, model.y, model.mask))


def _check_arguments(arguments: dict) -> None:
    """Before tracing: every shape (`_shapes`), `method`, and `num_samples` a whole
    number >= 1."""
    _shapes(arguments["params"], arguments["emissions"], arguments["inputs"])
    as_method(arguments["method"])  # ValueError / TypeError for a bad `method`
    if arguments.get("num_samples") is not None:
        arguments["num_samples"] = positive_count(arguments["num_samples"], "num_samples")


_checked = checks_arguments(_check_arguments)


@dynamax_signature
@_checked
@eqx.filter_jit
def lgssm_filter(
    params: LGSSMParams | Any,
    emissions: Float[ArrayLike, "ntime emission_dim"],
    inputs: Float[ArrayLike, "ntime input_dim"] | None = None,
    *,
    method: str | AbstractScanMethod = "auto",
) -> PosteriorGSSMFiltered:
    r"""Kalman filter: filtered and one-step predicted marginals, and the marginal
    log-likelihood.

    A scan of `scanalg.lgssm.KalmanFilter` elements (Särkkä & García-Fernández,
    2021) from the zero state, on the centred model (see the module's notes); with
    `method="sequential"` each step is one Kalman predict-and-update. The marginal
    log-likelihood is then summed from the one-step prediction errors (in parallel
    over time),

    $$\log p(y_{0:T-1}) = \sum_t \log \mathcal{N}(y_t \mid \hat y_t, S_t),$$

    over the observed components of each $y_t$.

    **Arguments:**

    - `params`: an `LGSSMParams` (or a dynamax `ParamsLGSSM`, or anything with the
      same attributes).
    - `emissions`: observations $y_{0:T-1}$, shape `(T, emission_dim)`; NaN entries
      are missing (marginalised), a row of NaN is a prediction only.
    - `inputs`: optional inputs $u_{0:T-1}$, shape `(T, input_dim)` (none: zero).
    - `method`: the scan method (see `scanalg.scan`).

    **Returns:**

    A `PosteriorGSSMFiltered` with
    $\log p(y_{0:T-1})$, the filtered marginals $p(z_t \mid y_{0:t})$ and the
    predicted marginals $p(z_{t+1} \mid y_{0:t})$.
    """
    model = _model(params, emissions, inputs)
    states = _filter(model, method)
    pm, pc = _predict(model, states.mean, states.cov)
    return PosteriorGSSMFiltered(
        marginal_loglik=_marginal_loglik(model, pm, pc),
        filtered_means=states.mean + model.ref,
        filtered_covariances=states.cov,
        predicted_means=pm + model.ref[1:],
        predicted_covariances=pc,
    )


# ---------------------------------------------------------------------------
# Smoother and sampler
# ---------------------------------------------------------------------------


def _smoother_elements(model: _Model, means: Array, covs: Array) -> SmootherElement:
    """RTS elements $(E_t, g_t, L_t)$ of the centred model; the last one is
    $(0, m_{T-1}, P_{T-1})$."""
    last = SmootherElement(E=jnp.zeros_like(covs[-1]), g=means[-1], L=covs[-1])
    if means.shape[0] == 1:
        return jax.tree.map(lambda a: a[None], last)
    ax = (0, 0, model.axis("F"), 0, model.axis("Q"))
    rest = jax.vmap(rts_smoother_elements, in_axes=ax)(
        means[:-1], covs[:-1], model.at("F", 1), model.c[1:], model.at("Q", 1)
    )
    return jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]]), rest, last)


@dynamax_signature
@_checked
@eqx.filter_jit
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
    `scanalg.lgssm.RTSSmoother` elements
    $p(z_t \mid z_{t+1}, y_{0:t}) = \mathcal{N}(E_t z_{t+1} + g_t, L_t)$.

    **Arguments:** as for `lgssm_filter`.

    **Returns:**

    A `PosteriorGSSMSmoothed`: the marginals $p(z_t \mid y_{0:T-1})$ and the cross
    moments $\mathbb{E}[z_t z_{t+1}^\top \mid y_{0:T-1}]$ (as in dynamax).
    """
    model = _model(params, emissions, inputs)
    filt = _filter(model, method)
    elems = _smoother_elements(model, filt.mean, filt.cov)
    n = model.m0.shape[0]
    init = SmootherState(jnp.zeros((n,), filt.mean.dtype), jnp.zeros((n, n), filt.mean.dtype))
    smooth = scan(RTSSmoother(), elems, init=init, reverse=True, method=method)
    ms, Ps = smooth.mean + model.ref, smooth.cov
    cross = elems.E[:-1] @ Ps[1:] + ms[:-1, :, None] * ms[1:, None, :]
    return PosteriorGSSMSmoothed(
        marginal_loglik=_marginal_loglik(model, *_predict(model, filt.mean, filt.cov)),
        filtered_means=filt.mean + model.ref,
        filtered_covariances=filt.cov,
        smoothed_means=ms,
        smoothed_covariances=Ps,
        smoothed_cross_covariances=cross,
    )


@dynamax_signature(jitter=True)
@_checked
@eqx.filter_jit
def lgssm_posterior_sample(
    key: PRNGKeyArray,
    params: LGSSMParams | Any,
    emissions: Float[ArrayLike, "ntime emission_dim"],
    inputs: Float[ArrayLike, "ntime input_dim"] | None = None,
    *,
    method: str | AbstractScanMethod = "auto",
    num_samples: int | None = None,
    jitter: float | Float[ArrayLike, ""] = 0.0,
) -> Float[Array, "ntime state_dim"] | Float[Array, "num_samples ntime state_dim"]:
    r"""Draw from the posterior $p(z_{0:T-1} \mid y_{0:T-1})$ (forward filtering,
    backward sampling).

    With the smoothing elements $(E_t, g_t, L_t)$ and standard normal draws
    $\varepsilon_t$ (taken from `key` before the scan), the sample solves the
    backward recurrence

    $$z_t = E_t z_{t+1} + g_t + L_t^{1/2} \varepsilon_t,$$

    a reverse scan of `Dual(Affine())` (affine maps composed backwards), with
    $L_t^{1/2}$ a Cholesky factor that exists for singular $L_t$ too
    (`scanalg._linalg.psd_cholesky`). All noise is drawn up front, so the same `key`
    gives the same sample for every method (up to rounding).

    **Arguments:**

    - `key`: a `jax.random` key.
    - `params`, `emissions`, `inputs`, `method`: as for `lgssm_filter`.
    - `num_samples`: how many samples (none: one, without a sample axis).
    - `jitter`: a variance added to the diagonal of every backward conditional
      covariance $L_t$, $t < T-1$, before sampling (dynamax's `jitter`; also accepted
      positionally after `inputs`, as in dynamax). Zero by default.

    **Returns:**

    The sample(s), shape `(T, state_dim)` or `(num_samples, T, state_dim)`.
    """
    model = _model(params, emissions, inputs)
    filt = _filter(model, method)
    elems = _smoother_elements(model, filt.mean, filt.cov)
    T, n = filt.mean.shape
    # dynamax's jitter: on the backward conditionals, not on the last filtered marginal.
    extra = jnp.asarray(jitter, elems.L.dtype) * (jnp.arange(T) < T - 1).astype(elems.L.dtype)
    L = elems.L + extra[:, None, None] * jnp.eye(n, dtype=elems.L.dtype)[None]
    roots = jax.vmap(lambda L: psd_cholesky(L)[0])(L)

    def one(k):
        eps = jax.random.normal(k, (T, n), filt.mean.dtype)
        h = elems.g + jnp.einsum("tij,tj->ti", roots, eps)
        init = jnp.zeros((n,), h.dtype)
        sample = scan(Dual(Affine()), (elems.E, h), init=init, reverse=True, method=method)
        return sample + model.ref

    if num_samples is None:
        return one(key)
    return jax.vmap(one)(jax.random.split(key, num_samples))
