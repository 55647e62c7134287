"""Exact LGSSM posteriors by conditioning the dense joint Gaussian (float64 numpy),
and random test models. Independent of the code under test: no recursion at all.

Missing data: every NaN entry of the emissions is left out of the conditioning (its
row and column of the joint covariance are dropped), which is exactly marginalising
it; rows partly NaN included. Singular covariances are fine: only the covariance of
the observed entries is inverted."""

import numpy as np


def _per_step(x, T, ndim):
    """A parameter as a list of T arrays (fixed or time-varying)."""
    x = None if x is None else np.asarray(x, np.float64)
    if x is None:
        return [None] * T
    return [x[t] for t in range(T)] if x.ndim == ndim + 1 else [x] * T


def _mvn_logpdf(x, mean, cov):
    d = x - mean
    sign, logdet = np.linalg.slogdet(cov)
    assert sign > 0
    return -0.5 * (d @ np.linalg.solve(cov, d) + logdet + len(x) * np.log(2 * np.pi))


def joint_moments(params, T, inputs=None):
    """Mean and covariance of the stacked vector (z_0..z_{T-1}, y_0..y_{T-1})."""
    m0 = np.asarray(params.initial.mean, np.float64)
    P0 = np.asarray(params.initial.cov, np.float64)
    n = m0.shape[0]
    dyn, emi = params.dynamics, params.emissions
    F = _per_step(dyn.weights, T, 2)
    b = _per_step(dyn.bias, T, 1)
    B = _per_step(dyn.input_weights, T, 2)
    Q = _per_step(dyn.cov, T, 2)
    H = _per_step(emi.weights, T, 2)
    k = H[0].shape[0]
    d = _per_step(emi.bias, T, 1)
    D = _per_step(emi.input_weights, T, 2)
    R_raw = np.asarray(emi.cov, np.float64)
    # By rank: (k,) a fixed diagonal, (k, k) fixed, (T, k, k) time-varying.
    R = [np.diag(R_raw)] * T if R_raw.ndim == 1 else _per_step(R_raw, T, 2)
    u = None if inputs is None else np.asarray(inputs, np.float64)

    def offset(bias, weights, t, dim):
        out = np.zeros(dim) if bias is None else bias.copy()
        if u is not None and weights is not None:
            out = out + weights @ u[t]
        return out

    # z = mu + Lam @ w with independent w_t ~ N(0, Qs[t]) (Qs[0] = P0).
    mu = np.zeros((T, n))
    Lam = np.zeros((T * n, T * n))
    Qs = [P0] + [Q[t] for t in range(1, T)]
    for t in range(T):
        if t == 0:
            mu[0] = m0
        else:
            mu[t] = F[t] @ mu[t - 1] + offset(b[t], B[t], t, n)
            Lam[t * n : (t + 1) * n, : t * n] = F[t] @ Lam[(t - 1) * n : t * n, : t * n]
        Lam[t * n : (t + 1) * n, t * n : (t + 1) * n] = np.eye(n)
    Wz = np.zeros((T * n, T * n))
    for t in range(T):
        Wz[t * n : (t + 1) * n, t * n : (t + 1) * n] = Qs[t]
    Szz = Lam @ Wz @ Lam.T
    Hb = np.zeros((T * k, T * n))
    Rb = np.zeros((T * k, T * k))
    my = np.zeros((T, k))
    for t in range(T):
        Hb[t * k : (t + 1) * k, t * n : (t + 1) * n] = H[t]
        Rb[t * k : (t + 1) * k, t * k : (t + 1) * k] = R[t]
        my[t] = H[t] @ mu[t] + offset(d[t], D[t], t, k)
    mean = np.concatenate([mu.ravel(), my.ravel()])
    cov = np.block([[Szz, Szz @ Hb.T], [Hb @ Szz, Hb @ Szz @ Hb.T + Rb]])
    return mean, cov, n, k


def _condition(mean, cov, n, k, T, y, upto):
    """Moments of z given the observed entries of y_0..y_{upto-1}."""
    obs = [T * n + t * k + i for t in range(upto) for i in range(k) if not np.isnan(y[t, i])]
    z = np.arange(T * n)
    if not obs:
        return mean[z], cov[np.ix_(z, z)], 0.0
    yo = np.array([y.ravel()[i - T * n] for i in obs])
    Soo = cov[np.ix_(obs, obs)]
    Szo = cov[np.ix_(z, obs)]
    gain = np.linalg.solve(Soo, Szo.T).T
    m = mean[z] + gain @ (yo - mean[obs])
    P = cov[np.ix_(z, z)] - gain @ Szo.T
    return m, 0.5 * (P + P.T), _mvn_logpdf(yo, mean[obs], Soo)


def dense_posterior(params, emissions, inputs=None):
    """Every quantity the lgssm functions return, by dense conditioning."""
    y = np.asarray(emissions, np.float64)
    T = y.shape[0]
    mean, cov, n, k = joint_moments(params, T, inputs)

    def block(v, t):
        return v[t * n : (t + 1) * n]

    def cblock(P, s, t):
        return P[s * n : (s + 1) * n, t * n : (t + 1) * n]

    fm, fc, pm, pc = [], [], [], []
    for t in range(T):
        m, P, _ = _condition(mean, cov, n, k, T, y, t + 1)
        fm.append(block(m, t))
        fc.append(cblock(P, t, t))
        if t + 1 < T:
            pm.append(block(m, t + 1))
            pc.append(cblock(P, t + 1, t + 1))
    m, P, ll = _condition(mean, cov, n, k, T, y, T)
    sm = np.stack([block(m, t) for t in range(T)])
    sc = np.stack([cblock(P, t, t) for t in range(T)])
    cross = np.array(
        [cblock(P, t, t + 1) + np.outer(sm[t], sm[t + 1]) for t in range(T - 1)]
    ).reshape(T - 1, n, n)
    return dict(
        marginal_loglik=ll,
        filtered_means=np.stack(fm),
        filtered_covariances=np.stack(fc),
        predicted_means=np.array(pm).reshape(T - 1, n),
        predicted_covariances=np.array(pc).reshape(T - 1, n, n),
        smoothed_means=sm,
        smoothed_covariances=sc,
        smoothed_cross_covariances=cross,
        joint_mean=m,
        joint_covariance=P,
    )


def random_spd(rng, n, scale=1.0):
    a = rng.normal(size=(n, n))
    return scale * (a @ a.T / n + 0.5 * np.eye(n))


def random_model(
    seed, T, n, k, m=0, *, time_varying=(), diag_R=False, missing=(), partly_missing=(), stable=True
):
    """A random model as plain numpy arrays: returns (kwargs for LGSSMParams,
    emissions, inputs). `time_varying` names parameters given per time step
    (e.g. "dynamics_weights", "emissions_cov"; a time-varying diagonal covariance is
    given as diagonal matrices); `missing` lists NaN rows, `partly_missing` NaN
    entries `(t, i)`."""
    rng = np.random.default_rng(seed)

    def maybe_tv(name, make):
        if name in time_varying:
            return np.stack([make() for _ in range(T)])
        return make()

    def weights():
        a = rng.normal(size=(n, n))
        if stable:
            a = 0.9 * a / max(1.0, np.max(np.abs(np.linalg.eigvals(a))))
        return a

    kw = dict(
        initial_mean=rng.normal(size=n),
        initial_cov=random_spd(rng, n),
        dynamics_weights=maybe_tv("dynamics_weights", weights),
        dynamics_cov=maybe_tv("dynamics_cov", lambda: random_spd(rng, n, 0.3)),
        dynamics_bias=maybe_tv("dynamics_bias", lambda: rng.normal(size=n)),
        emissions_weights=maybe_tv("emissions_weights", lambda: rng.normal(size=(k, n))),
        emissions_bias=maybe_tv("emissions_bias", lambda: rng.normal(size=k)),
    )
    if diag_R and "emissions_cov" in time_varying:
        kw["emissions_cov"] = maybe_tv("emissions_cov", lambda: np.diag(rng.uniform(0.2, 1.0, k)))
    elif diag_R:
        kw["emissions_cov"] = rng.uniform(0.2, 1.0, size=k)
    else:
        kw["emissions_cov"] = maybe_tv("emissions_cov", lambda: random_spd(rng, k, 0.5))
    inputs = None
    if m:
        kw["dynamics_input_weights"] = maybe_tv(
            "dynamics_input_weights", lambda: rng.normal(size=(n, m))
        )
        kw["emissions_input_weights"] = maybe_tv(
            "emissions_input_weights", lambda: rng.normal(size=(k, m))
        )
        inputs = rng.normal(size=(T, m))
    emissions = rng.normal(size=(T, k)) * 2
    for t in missing:
        emissions[t] = np.nan
    for t, i in partly_missing:
        emissions[t, i] = np.nan
    return kw, emissions, inputs
