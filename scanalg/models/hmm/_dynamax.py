r"""dynamax's remaining HMM functions on scanalg.

`hmm_backward_filter`, `hmm_two_filter_smoother`, `hmm_fixed_lag_smoother` and
`compute_transition_probs` are dynamax's HMM functions that scanalg's core does not
have, each built from scan elements and run through `scanalg.scan` with any `method`,
with dynamax's signatures (`_signature.dynamax_signature`, re-exported here; it is
also applied to `hmm_filter`, `hmm_smoother`, `hmm_posterior_sample` and
`hmm_posterior_mode`).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Scalar

from ..._methods import AbstractScanMethod
from ..._numerics import finite_or_zero, normalise, safe_log, tree_sum
from ..._scan import scan
from ..._validate import (
    attach_checks,
    checks_arguments,
    distribution_problem,
    float_dtype,
    nan_or_positive_infinity,
)
from ...monoids import Dual
from ._inference import HMMPosterior, check_shapes, checked, hmm_filter
from ._monoids import HMMBackward, HMMForward, ScaledMatrix
from ._signature import (
    TransitionFn,
    Transitions as _Transitions,
    dynamax_signature as dynamax_signature,
    num_timesteps_and_states,
    transitions as transitions,
)

# --------------------------------------------------------------------------------------
# The backward filter.
# --------------------------------------------------------------------------------------


def _check(transition_matrix, log_likelihoods):
    """Shapes at trace time, values with `error_if`; one dtype. Returns
    `(transition_matrix, log_likelihoods, time_varying)`."""
    a = jnp.asarray(transition_matrix)
    ll = jnp.asarray(log_likelihoods)
    t, k = num_timesteps_and_states(ll)
    if t < 1:
        raise ValueError(f"`log_likelihoods` needs T >= 1 time steps; got shape {ll.shape}.")
    if a.shape not in ((k, k), (t - 1, k, k)):
        raise ValueError(
            f"`transition_matrix` must have shape (K, K) = ({k}, {k}) or (T-1, K, K) = "
            f"({t - 1}, {k}, {k}) for `log_likelihoods` of shape {ll.shape}; got shape "
            f"{a.shape}."
        )
    dtype = float_dtype(a, ll)
    a, ll = a.astype(dtype), ll.astype(dtype)
    checks = [
        (
            distribution_problem(a),
            "Every row of `transition_matrix` must be a probability vector (nonnegative, "
            "no NaN, summing to one along the last axis).",
        ),
        (nan_or_positive_infinity(ll), "`log_likelihoods` contains NaN or +inf."),
    ]
    ll = attach_checks(ll, checks)  # (every output depends on `ll`)
    return a, ll, a.ndim == 3


def _condition(weights: Float[Array, " K"], log_likelihood: Float[Array, " K"]):
    r"""$q = w \odot e^{\ell}$ as `(q / sum(q), log sum(q))`, shifted by the largest
    $\ell$ on the support of $w$ (exact for any dynamic range; zero stays zero)."""
    on = weights > 0
    shift = finite_or_zero(jnp.max(jnp.where(on, log_likelihood, -jnp.inf)))
    q = weights * jnp.exp(jnp.where(on, log_likelihood - shift, -jnp.inf))
    total = jnp.sum(q)
    return q / jnp.where(total > 0, total, 1), shift + safe_log(total)


def _move_back(a, f, time_varying):
    """$A_t f_{t+1}$ for every step: `(T-1, K)`."""
    if time_varying:
        return jnp.einsum("tij,tj->ti", a, f)
    return f @ a.T


def _backward(a, ll, time_varying, method):
    r"""`(log_normaliser, backward_pred_probs)`, scaled as dynamax's.

    The messages $\beta_t = p(y_{t+1:T} \mid z_t)$ obey $\beta_t^\top =
    (\beta_{t+1} \odot e^{\ell_{t+1}})^\top A_t^\top$: one step of the forward filter
    with the transposed matrix, backwards in time. So they are the states of a reverse
    scan of `Dual(HMMForward(A^T))` from $\beta_{T-1} \propto \mathbf{1}$ (normalised:
    every row-scaling of `HMMForward` applies). dynamax's scaling is then read out of
    them: `backward_pred_probs[t]` $= A_t f_{t+1}$ with $f_{t+1}$ the normalised
    $\beta_{t+1} \odot e^{\ell_{t+1}}$, the last row ones, and the log-normaliser the
    (tree) sum of the per-step $\log \sum_k \text{backward\_pred\_probs}[t, k]
    e^{\ell_t[k]}$.
    """
    k = ll.shape[1]
    init = jnp.full((k,), 1 / k, ll.dtype)
    if time_varying:
        first = jnp.eye(k, dtype=a.dtype)[None]  # (element 0 is never applied)
        steps = jnp.concatenate([first, jnp.swapaxes(a, -1, -2)])
        monoid, elems = Dual(HMMForward()), ScaledMatrix(steps, ll)
    else:
        monoid, elems = Dual(HMMForward(a.T)), ll
    states = scan(monoid, elems, init=init, reverse=True, exclusive=True, method=method)
    conditioned, _ = jax.vmap(_condition)(states[1:], ll[1:])
    moved = _move_back(a, conditioned, time_varying)
    messages = jnp.concatenate([moved, jnp.ones_like(init)[None]])
    _, log_norms = jax.vmap(_condition)(messages, ll)
    return tree_sum(log_norms), messages


def check_backward_shapes(arguments: dict) -> None:
    """Before tracing: `ValueError` for arrays of the wrong shapes, naming the
    argument (the HMM functions' checks, for a backward filter without `initial_probs`)."""
    _, k = num_timesteps_and_states(arguments["log_likelihoods"])
    check_shapes(np.empty((k,)), arguments["transition_matrix"], arguments["log_likelihoods"])


@eqx.filter_jit
def _backward_filter(transition_matrix, log_likelihoods, *, method):
    a, ll, tv = _check(transition_matrix, log_likelihoods)
    return _backward(a, ll, tv, method)


@dynamax_signature
@checks_arguments(check_backward_shapes)
def hmm_backward_filter(
    transition_matrix: _Transitions,
    log_likelihoods: Float[ArrayLike, "num_timesteps num_states"],
    *,
    method: str | AbstractScanMethod = "auto",
) -> tuple[Scalar, Float[Array, "num_timesteps num_states"]]:
    r"""The backward filter (dynamax's `hmm_backward_filter`): messages
    $\beta_t \propto p(y_{t+1:T} \mid z_t)$.

    A reverse scan of `Dual(HMMForward(A^\top))`: the backward recursion
    $\beta_t = A_t(e^{\ell_{t+1}} \odot \beta_{t+1})$ is the forward filter's step with
    the transposed matrix, run backwards, so it inherits its row scaling (no underflow
    at any length) and every `method`.

    **Arguments:**

    - `transition_matrix`: `(K, K)` or `(T-1, K, K)` (or `transition_fn=`).
    - `log_likelihoods`: $\ell_t[k] = \log p(y_t \mid z_t = k)$, shape `(T, K)`.
    - `method`: the scan method (see `scanalg.scan`).

    **Returns:**

    `(log_normalizer, backward_pred_probs)` as in dynamax: `backward_pred_probs[T-1]`
    is all ones and `backward_pred_probs[t]` $= A_t f_{t+1}$, $f_{t+1}$ the normalised
    $\beta_{t+1} \odot e^{\ell_{t+1}}$; `log_normalizer` is
    $\log \sum_{z_1} p(y_{1:T} \mid z_1)$ (the likelihood under a flat, unnormalised
    initial weight).
    """
    return _backward_filter(transition_matrix, log_likelihoods, method=method)


# --------------------------------------------------------------------------------------
# Smoothers.
# --------------------------------------------------------------------------------------


def _transition_probs(a, filtered, smoothed, time_varying):
    r"""$\xi_t[i, j] = f_t[i] A_t[i, j] s_{t+1}[j] / (f_t A_t)_j$; for a fixed matrix
    each $\xi_t$ normalised, then summed over $t$ (dynamax's conventions)."""
    f = filtered[:-1]
    columns = jnp.einsum("ti,tij->tj", f, a) if time_varying else f @ a
    ratio = jnp.where(columns > 0, smoothed[1:] / jnp.where(columns > 0, columns, 1), 0)
    moves = a if time_varying else a[None]
    xi = f[:, :, None] * moves * ratio[:, None, :]
    if time_varying:
        return xi
    k = a.shape[-1]
    if xi.shape[0] == 0:
        return jnp.zeros_like(a)
    totals = jnp.sum(xi, axis=(1, 2), keepdims=True)
    xi = xi / jnp.where(totals > 0, totals, 1)
    return jax.vmap(tree_sum, in_axes=1)(xi.reshape(-1, k * k)).reshape(k, k)


@eqx.filter_jit
def _compute_transition_probs(transition_matrix, filtered, smoothed):
    a = jnp.asarray(transition_matrix)
    return _transition_probs(a, filtered, smoothed, a.ndim == 3)


def compute_transition_probs(
    transition_matrix: _Transitions | None,
    hmm_posterior: HMMPosterior,
    transition_fn: TransitionFn | None = None,
) -> _Transitions:
    r"""Smoothed transition probabilities from a posterior (dynamax's function).

    $$p(z_t = i, z_{t+1} = j \mid y_{1:T}) = \frac{f_t[i]\, A_t[i, j]\,
      s_{t+1}[j]}{(f_t A_t)_j},$$

    with $f$, $s$ the posterior's filtered and smoothed probabilities (a column that
    cannot be reached gives zero, not NaN).

    **Arguments:**

    - `transition_matrix`: `(K, K)`, `(T-1, K, K)` or `None` (then `transition_fn`).
    - `hmm_posterior`: the output of a smoother (`hmm_smoother`,
      `hmm_two_filter_smoother`).
    - `transition_fn`: optional function of $t$ giving $A_t$ (see `transitions`).

    **Returns:**

    For a fixed `(K, K)` matrix, the expected transition counts (each step normalised,
    summed over $t$), shape `(K, K)`; otherwise the per-step probabilities, shape
    `(T-1, K, K)`.
    """
    filtered = jnp.asarray(hmm_posterior.filtered_probs)
    smoothed = jnp.asarray(hmm_posterior.smoothed_probs)
    num_timesteps, num_states = num_timesteps_and_states(filtered)
    a = transitions(transition_matrix, transition_fn, num_timesteps, num_states)
    return _compute_transition_probs(a, filtered, smoothed)


@eqx.filter_jit
def _two_filter_smoother(initial_probs, transition_matrix, log_likelihoods, *, method):
    post = hmm_filter(initial_probs, transition_matrix, log_likelihoods, method=method)
    a, ll, tv = _check(transition_matrix, log_likelihoods)
    _, messages = _backward(a, ll, tv, method)
    # filtered * messages, normalised, in log space: both factors are normalised, but
    # their product can fall below the dtype's range where they disagree.
    f = post.filtered_probs
    on = (f > 0) & (messages > 0)
    logs = jnp.where(on, safe_log(f) + safe_log(messages), -jnp.inf)
    top = finite_or_zero(jnp.max(logs, axis=1, keepdims=True))
    smoothed = normalise(jnp.exp(logs - top))
    return HMMPosterior(
        marginal_loglik=post.marginal_loglik,
        filtered_probs=f,
        predicted_probs=post.predicted_probs,
        smoothed_probs=smoothed,
        initial_probs=smoothed[0],
        trans_probs=_transition_probs(a, f, smoothed, tv),
    )


@dynamax_signature(compute_trans_probs=True)
@checked
def hmm_two_filter_smoother(
    initial_probs: Float[ArrayLike, " num_states"],
    transition_matrix: _Transitions,
    log_likelihoods: Float[ArrayLike, "num_timesteps num_states"],
    *,
    method: str | AbstractScanMethod = "auto",
) -> HMMPosterior:
    r"""Two-filter smoothing (dynamax's `hmm_two_filter_smoother`): the forward filter
    and the backward filter, multiplied.

    $$p(z_t \mid y_{1:T}) \propto p(z_t \mid y_{1:t})\, p(y_{t+1:T} \mid z_t),$$

    a forward scan (`hmm_filter`) and a reverse scan (`hmm_backward_filter`), both with
    `method`; the product is formed in log space, so it is exact whatever the dynamic
    range. The same posterior as `hmm_smoother` (which carries the smoothed marginals
    back through Markov kernels instead).

    **Arguments:** as for `hmm_filter` (`lengths` is not supported).

    **Returns:**

    `HMMPosterior`, with `trans_probs` as in `compute_transition_probs` (or `None` for
    `compute_trans_probs=False`).
    """
    return _two_filter_smoother(initial_probs, transition_matrix, log_likelihoods, method=method)


def _windows(x: Array, window_size: int) -> Array:
    """`out[t, j] = x[t - window_size + 1 + j]`, zero before the start: `(T, w, ...)`."""
    t = x.shape[0]
    index = jnp.arange(t)[:, None] + jnp.arange(1 - window_size, 1)[None, :]
    valid = (index >= 0).reshape(*index.shape, *([1] * (x.ndim - 1)))
    return jnp.where(valid, x[jnp.maximum(index, 0)], 0)


def _log_normalisers(predicted, ll):
    r"""$\log p(y_t \mid y_{1:t-1}) = \log \sum_k p(z_t = k \mid y_{1:t-1}) e^{\ell_t[k]}$."""
    return jax.vmap(_condition)(predicted, ll)[1]


@eqx.filter_jit
def _fixed_lag_smoother(initial_probs, transition_matrix, log_likelihoods, window_size, *, method):
    post = hmm_filter(initial_probs, transition_matrix, log_likelihoods, method=method)
    a, ll, tv = _check(transition_matrix, log_likelihoods)
    f, p = post.filtered_probs, post.predicted_probs
    filtered, predicted = _windows(f, window_size), _windows(p, window_size)
    # Lag j of the window ending at t: p(z_s | y_{1:t}), s = t - w + 1 + j, is
    # B_s ... B_{t-1} f_t, the backward kernels of `HMMBackward` (which depend on the
    # filter only, not on t). So each window is a reverse scan over its w - 1 kernels
    # from f_t, and all T windows run at once under `vmap`.
    if tv:
        # (the last filtered row has no step out of it; any matrix will do)
        steps = jnp.concatenate([a, jnp.eye(a.shape[-1], dtype=a.dtype)[None]])
        monoid, inputs = HMMBackward(), (filtered[:, :-1], _windows(steps, window_size)[:, :-1])
    else:
        monoid, inputs = HMMBackward(a), filtered[:, :-1]

    def window(inputs, last):
        return scan(monoid, inputs, init=last, reverse=True, method=method)

    earlier = jax.vmap(window)(inputs, f)
    smoothed = jnp.concatenate([earlier, f[:, None]], axis=1)
    smoothed = jnp.where(filtered.sum(axis=-1, keepdims=True) > 0, smoothed, 0)
    log_norms = _windows(_log_normalisers(p, ll), window_size)
    return HMMPosterior(
        marginal_loglik=jnp.sum(log_norms, axis=1),
        filtered_probs=filtered,
        predicted_probs=predicted,
        smoothed_probs=smoothed,
        initial_probs=smoothed[0],
    )


@dynamax_signature
@checked
def hmm_fixed_lag_smoother(
    initial_probs: Float[ArrayLike, " num_states"],
    transition_matrix: _Transitions,
    log_likelihoods: Float[ArrayLike, "num_timesteps num_states"],
    window_size: int,
    *,
    method: str | AbstractScanMethod = "auto",
) -> HMMPosterior:
    r"""Fixed-lag smoothing (dynamax's `hmm_fixed_lag_smoother`): at every time $t$,
    the posteriors of the last `window_size` states given $y_{1:t}$.

    With the backward kernels $B_s[i, j] = p(z_s = i \mid z_{s+1} = j, y_{1:s})$
    (`HMMBackward`; they depend on the forward filter only),

    $$p(z_s \mid y_{1:t}) = B_s B_{s+1} \cdots B_{t-1}\, p(z_t \mid y_{1:t}),
      \qquad t - w < s \le t,$$

    so each window is a reverse scan of $w - 1$ Markov kernels started from the
    filtered distribution at $t$, and all $T$ windows run as one `vmap`ped scan:
    $O(TwK^2)$ work with `Sequential` (and $O(TwK^2)$ memory for a time-varying
    matrix, whose windows are gathered). Exact at any dynamic range and lag.

    **Arguments:**

    - `initial_probs`, `transition_matrix`, `log_likelihoods`, `method`: as for
      `hmm_filter`.
    - `window_size`: the lag window $w \ge 1$ (a Python int).

    **Returns:**

    `HMMPosterior` with dynamax's windowed layout: `filtered_probs`,
    `predicted_probs`, `smoothed_probs` of shape `(T, w, K)` (entry `[t, j]` is about
    $z_{t-w+1+j}$; zero before the start), `marginal_loglik` of shape `(T,)` (the
    log-likelihood of the observations in the window, $\log p(y_{t-w+1:t} \mid
    y_{1:t-w})$), `initial_probs` `= smoothed_probs[0]`, `trans_probs` `None`.
    """
    if not (isinstance(window_size, int) and window_size >= 1):
        raise ValueError(f"`window_size` must be an int >= 1; got {window_size!r}.")
    return _fixed_lag_smoother(
        initial_probs, transition_matrix, log_likelihoods, window_size, method=method
    )
