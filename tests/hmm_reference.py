"""Brute-force HMM reference: enumerate all K^T paths in float64 NumPy.

Only for tiny problems (T <= 6, K <= 3). Everything is computed from the joint
log-probability of every path, with no recursion shared with the code under test.
"""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from xla_codegen import DEFAULT


def _log(x):
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(x, np.float64))


def _logsumexp(x, axis=None):
    x = np.asarray(x, np.float64)
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top
    return np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


def _transitions(transition_matrix, num_steps):
    a = np.asarray(transition_matrix, np.float64)
    if a.ndim == 2:
        return np.broadcast_to(a, (max(num_steps - 1, 0), *a.shape))
    return a


def paths(num_states, num_steps):
    """All paths, shape `(K**T, T)`."""
    return np.array(list(itertools.product(range(num_states), repeat=num_steps)), np.int64)


def path_log_joint(initial_probs, transition_matrix, log_likelihoods, upto=None, last_ll=True):
    """`log p(z_{0:s}, y_{0:s})` for every path `z_{0:s}`, with `s = upto` (default T-1).

    With `last_ll=False` the likelihood of the last step is left out (for predictions).
    Returns `(paths, log_joint)`.
    """
    ll = np.asarray(log_likelihoods, np.float64)
    t, k = ll.shape
    s = t - 1 if upto is None else upto
    a = _transitions(transition_matrix, t)
    zs = paths(k, s + 1)
    logp = _log(initial_probs)[zs[:, 0]]
    for step in range(s):
        logp = logp + _log(a[step])[zs[:, step], zs[:, step + 1]]
    for step in range(s + 1):
        if step < s or last_ll:
            logp = logp + ll[step, zs[:, step]]
    return zs, logp


def _marginal(zs, logp, step, k):
    probs = np.exp(logp - _logsumexp(logp)) if np.isfinite(_logsumexp(logp)) else 0 * logp
    return np.array([np.sum(probs[zs[:, step] == j]) for j in range(k)])


def reference(initial_probs, transition_matrix, log_likelihoods):
    """Everything the HMM functions return, by enumeration.

    Returns a dict with `marginal_loglik`, `filtered_probs`, `predicted_probs`,
    `smoothed_probs`, `trans_probs` (always `(T-1, K, K)`), `mode` and the posterior
    over all paths (`paths`, `path_probs`).
    """
    ll = np.asarray(log_likelihoods, np.float64)
    t, k = ll.shape
    zs, logp = path_log_joint(initial_probs, transition_matrix, ll)
    loglik = _logsumexp(logp)
    probs = np.exp(logp - loglik)
    filtered, predicted = [], []
    for step in range(t):
        z_f, lp_f = path_log_joint(initial_probs, transition_matrix, ll, upto=step)
        filtered.append(_marginal(z_f, lp_f, step, k))
        z_p, lp_p = path_log_joint(initial_probs, transition_matrix, ll, upto=step, last_ll=False)
        predicted.append(_marginal(z_p, lp_p, step, k))
    smoothed = np.stack([_marginal(zs, logp, step, k) for step in range(t)])
    trans = np.zeros((max(t - 1, 0), k, k))
    for step in range(t - 1):
        np.add.at(trans[step], (zs[:, step], zs[:, step + 1]), probs)
    return dict(
        marginal_loglik=loglik,
        filtered_probs=np.stack(filtered),
        predicted_probs=np.stack(predicted),
        smoothed_probs=smoothed,
        trans_probs=trans,
        mode=zs[np.argmax(logp)],
        paths=zs,
        path_probs=probs,
    )


def log_space_filter(initial_probs, transition_matrix, log_likelihoods):
    """The forward recursion in log space (no enumeration, no underflow).

    Returns `(log p(y_{1:T}), log_alpha)` with `log_alpha[t, k] = log p(y_{1:t}, z_t = k)`.
    """
    ll = np.asarray(log_likelihoods, np.float64)
    a = _transitions(transition_matrix, ll.shape[0])
    alphas = [_log(initial_probs) + ll[0]]
    for step in range(1, ll.shape[0]):
        alphas.append(_logsumexp(alphas[-1][:, None] + _log(a[step - 1]), axis=0) + ll[step])
    return _logsumexp(alphas[-1]), np.stack(alphas)


def log_space_loglik(initial_probs, transition_matrix, log_likelihoods):
    """`log p(y_{1:T})` by the forward recursion in log space."""
    return log_space_filter(initial_probs, transition_matrix, log_likelihoods)[0]


def random_hmm(rng, num_steps, num_states, time_varying=False, zeros=False):
    """A random HMM: Dirichlet rows, Gaussian log-likelihoods (float64 NumPy).

    With `zeros=True` about a third of the transition entries are structural zeros
    (each row keeps at least one positive entry).
    """
    k = num_states
    pi = rng.dirichlet(np.ones(k))
    shape = (num_steps - 1, k, k) if time_varying else (k, k)
    a = rng.dirichlet(np.ones(k), size=shape[:-1])
    if zeros:
        mask = rng.random(shape) < 0.35
        mask[..., np.arange(k), np.arange(k)] = False
        a = np.where(mask, 0.0, a)
        a = a / a.sum(-1, keepdims=True)
    ll = rng.normal(size=(num_steps, k)) * 1.5
    return pi, a, ll


def _inverse_cdf(weights, u):
    """The largest state whose weight is positive and whose preceding weights sum to at
    most `u` times the total (never a zero-weight state)."""
    target, running, choice = u * np.sum(weights), 0.0, 0
    for i, w in enumerate(weights):
        if w > 0 and running <= target:
            choice = i
        running += w
    return choice


def inverse_cdf_path(filtered, transition_matrix, u):
    """Backward sampling by the inverse CDF with given uniforms `u` (one per step): the
    last state from the last filtered distribution, then each earlier one from the
    backward kernel's column of the next state (weights `f_t[i] A_t[i, j]`, or the prior
    weights `A_t[i, j]` if those are all zero)."""
    f = np.asarray(filtered, np.float64)
    u = np.asarray(u, np.float64)
    a = _transitions(transition_matrix, f.shape[0])
    z = np.zeros(f.shape[0], np.int64)
    z[-1] = _inverse_cdf(f[-1], u[-1])
    for step in range(f.shape[0] - 2, -1, -1):
        w = f[step] * a[step][:, z[step + 1]]
        if w.sum() <= 0:
            w = a[step][:, z[step + 1]]
        z[step] = _inverse_cdf(w, u[step])
    return z


def log_space_posterior(initial_probs, transition_matrix, log_likelihoods, per_step=False):
    """Forward-backward entirely in log space, in float64 JAX (a `lax.scan` per pass,
    so fast enough for a million steps): exact at any dynamic range. Shares no code
    with scanalg.

    Returns a dict of NumPy arrays: `marginal_loglik`, `filtered_probs`,
    `predicted_probs`, `smoothed_probs` and `trans_probs`, summed over time `(K, K)`
    (per step `(T-1, K, K)` if `per_step`).
    """
    args = (np.asarray(x, np.float64) for x in (initial_probs, transition_matrix))
    out = _log_space_posterior(*args, np.asarray(log_likelihoods, np.float64), per_step)
    return {name: np.asarray(value) for name, value in out.items()}


# (a million steps in some tests: run time, not compile time, dominates)
@functools.partial(jax.jit, static_argnums=3, compiler_options=DEFAULT)
def _log_space_posterior(initial_probs, transition_matrix, ll, per_step):
    def log(x):
        return jnp.where(x > 0, jnp.log(jnp.where(x > 0, x, 1)), -jnp.inf)

    def lse(x, axis):  # -inf (not NaN) for an all -inf slice
        top = jnp.max(x, axis=axis, keepdims=True)
        top = jnp.where(jnp.isfinite(top), top, 0)
        return jnp.squeeze(top, axis) + log(jnp.sum(jnp.exp(x - top), axis=axis))

    t, k = ll.shape
    log_a = log(transition_matrix)
    fixed = log_a.ndim == 2  # (then not broadcast over time: a million K x K copies)

    def forward(log_pred, inputs):
        ll_t, log_a_t = inputs
        log_a_t = log_a if fixed else log_a_t
        joint = log_pred + ll_t
        norm = lse(joint, 0)
        log_f = joint - norm
        return lse(log_f[:, None] + log_a_t, 0), (norm, log_f, log_pred)

    # (the move out of the last step is unused)
    moves = jnp.zeros(t) if fixed else jnp.concatenate([log_a, jnp.zeros((1, k, k))])
    _, (norms, log_f, log_p) = jax.lax.scan(forward, log(initial_probs), (ll, moves))

    def backward(carry, inputs):
        log_s_next, total = carry
        log_f_t, log_a_t = inputs
        log_a_t = log_a if fixed else log_a_t
        weights = log_f_t[:, None] + log_a_t  # (i, j): z_t = i, z_{t+1} = j
        cols = lse(weights, 0)
        ok = jnp.isfinite(cols)[None, :]
        log_xi = jnp.where(ok, weights - cols[None, :] + log_s_next[None, :], -jnp.inf)
        xi = jnp.exp(log_xi)
        new = (lse(log_xi, 1), total if per_step else total + xi)
        return new, (new[0], xi if per_step else None)

    start = (log_f[-1], jnp.zeros((k, k)))
    moves = moves[:-1]
    (_, total), (log_s, xi) = jax.lax.scan(backward, start, (log_f[:-1], moves), reverse=True)
    return dict(
        marginal_loglik=jnp.sum(norms),
        filtered_probs=jnp.exp(log_f),
        predicted_probs=jnp.exp(log_p - lse(log_p, 1)[:, None]),
        smoothed_probs=jnp.exp(jnp.concatenate([log_s, log_f[-1:]])),
        trans_probs=xi if per_step else total,
    )


def viterbi(initial_probs, transition_matrix, log_likelihoods):
    """The most likely path by the Viterbi recursion in log space (NumPy; ties to the
    smallest state index)."""
    ll = np.asarray(log_likelihoods, np.float64)
    a = _transitions(transition_matrix, ll.shape[0])
    scores = _log(initial_probs) + ll[0]
    pointers = []
    for step in range(1, ll.shape[0]):
        candidates = scores[:, None] + _log(a[step - 1])
        pointers.append(np.argmax(candidates, axis=0))
        scores = np.max(candidates, axis=0) + ll[step]
    path = [int(np.argmax(scores))]
    for back in reversed(pointers):
        path.append(int(back[path[-1]]))
    return np.array(path[::-1])
