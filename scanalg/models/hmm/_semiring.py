r"""HMM posterior quantities through the semiring chain algebra: the entropy of the
posterior over paths and its $k$ most probable paths.

The posterior $p(z_{1:T} \mid y_{1:T})$ of an HMM is a linear-chain CRF with unary
scores $u_1 = \log\pi + \ell_1$, $u_t = \ell_t$ and pairwise scores $\log A_t$, and
$Z = p(y_{1:T})$; so these are chain sums of `scanalg.semirings` (`Entropy`,
`KMax(k)`), on any scan method.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, Scalar

from ..._methods import AbstractScanMethod
from ..._numerics import safe_log
from ..._validate import distribution_problem, float_dtype
from ...semirings import (
    ChainLayout,
    Entropy,
    KMax,
    Log,
    chain_best,
    chain_layout,
    chain_sum,
    jit_checking_lengths,
)

_Transitions = (
    Float[Array, "num_states num_states"]
    | Float[Array, "num_timesteps_minus_1 num_states num_states"]
)


def _chain(initial_probs, transition_matrix, log_likelihoods, lengths):
    """Check the arguments (dynamax conventions) and return the chain's
    `(unaries, log_transitions, layout)`."""
    pi = jnp.asarray(initial_probs)
    a = jnp.asarray(transition_matrix)
    ll = jnp.asarray(log_likelihoods)
    if ll.ndim != 2 or ll.shape[0] < 1:
        raise ValueError(
            "`log_likelihoods` must have shape (T, K) = (num_timesteps, num_states) with "
            f"T >= 1; got shape {ll.shape}."
        )
    t, k = ll.shape
    if pi.shape != (k,):
        raise ValueError(
            f"`initial_probs` must have shape (K,) = ({k},) to match `log_likelihoods` of "
            f"shape {ll.shape}; got shape {pi.shape}."
        )
    if a.shape not in ((k, k), (t - 1, k, k)):
        raise ValueError(
            f"`transition_matrix` must have shape (K, K) = ({k}, {k}) or (T-1, K, K) = "
            f"({t - 1}, {k}, {k}); got shape {a.shape}."
        )
    dtype = float_dtype(pi, a, ll)
    pi, a, ll = pi.astype(dtype), a.astype(dtype), ll.astype(dtype)
    rule = "(nonnegative, no NaN, summing to one along the last axis)"
    checks = [
        (distribution_problem(pi), f"`initial_probs` must be a probability vector {rule}."),
        (
            distribution_problem(a),
            f"Every row of `transition_matrix` must be a probability vector {rule}.",
        ),
        (jnp.any(jnp.isnan(ll) | (ll == jnp.inf)), "`log_likelihoods` contains NaN or +inf."),
    ]
    for bad, message in checks:
        ll = eqx.error_if(ll, bad, message)
    layout: ChainLayout = chain_layout(lengths, t)
    unaries = ll + jnp.where(layout.starts[:, None], safe_log(pi)[None], 0)
    return unaries, safe_log(a), layout


def _num_steps(arguments: dict) -> tuple[int, str]:
    return jnp.shape(arguments["log_likelihoods"])[0], "log_likelihoods"


@jit_checking_lengths(_num_steps)
def hmm_posterior_entropy(
    initial_probs: Float[Array, " num_states"],
    transition_matrix: _Transitions,
    log_likelihoods: Float[Array, "num_timesteps num_states"],
    *,
    lengths: Int[Array, " num_sequences"] | None = None,
    method: str | AbstractScanMethod = "auto",
) -> Scalar | Float[Array, " num_sequences"]:
    r"""The entropy of the posterior over state paths,
    $H = -\sum_{z_{1:T}} p(z_{1:T} \mid y_{1:T}) \log p(z_{1:T} \mid y_{1:T})$.

    One forward scan under the expectation semiring `scanalg.semirings.Entropy`,
    which carries $(\log p(y_{1:t}, z_t), H)$ pairs; exact, in log space, with
    structural zeros and $-\infty$ log-likelihoods allowed. If the observations are
    impossible ($p(y_{1:T}) = 0$) the entropy is zero.

    **Arguments:**

    - `initial_probs`: $\pi = p(z_1)$, shape `(K,)`.
    - `transition_matrix`: $A[i, j] = p(z_{t+1} = j \mid z_t = i)$, shape `(K, K)`,
      or time-varying, shape `(T-1, K, K)`.
    - `log_likelihoods`: $\ell_t[k] = \log p(y_t \mid z_t = k)$, shape `(T, K)`.
    - `lengths`: optional, shape `(B,)`: a packed ragged batch, as for
      `scanalg.hmm.hmm_filter`.
    - `method`: the scan method (see `scanalg.scan`).

    **Returns:**

    $H$ in nats, a scalar (shape `(B,)` with `lengths`).
    """
    unaries, log_a, layout = _chain(initial_probs, transition_matrix, log_likelihoods, lengths)
    h = chain_sum(Entropy(), unaries, log_a, layout, method)[:, 1]
    return h[0] if layout.single else h


@jit_checking_lengths(_num_steps)
def hmm_posterior_kbest(
    initial_probs: Float[Array, " num_states"],
    transition_matrix: _Transitions,
    log_likelihoods: Float[Array, "num_timesteps num_states"],
    *,
    k: int,
    lengths: Int[Array, " num_sequences"] | None = None,
    method: str | AbstractScanMethod = "auto",
) -> tuple[Float[Array, "*num_sequences k"], Int[Array, "k num_timesteps"]]:
    r"""The $k$ most probable state paths and their posterior log-probabilities
    $\log p(z_{1:T} \mid y_{1:T})$, most probable first.

    A forward scan under `scanalg.semirings.KMax(k)` with back-pointers to (state,
    rank) pairs, composed backwards by a reverse scan of
    `scanalg.monoids.FiniteFunction`, and the log-likelihood $\log p(y_{1:T})$ from a
    scan under `Log`. `k=1` gives the Viterbi path of `scanalg.hmm.hmm_posterior_mode`.
    Ties go to the path that is smallest in reverse lexicographic order ($z_T$
    first). If $k$ exceeds the number of paths $K^T$, the extra log-probabilities are
    $-\infty$ (their paths are valid state indices, not distinct paths).

    **Arguments:** as for `hmm_posterior_entropy`, and `k`, an int $\ge 1$.

    **Returns:**

    `(log_probs, paths)`: shapes `(k,)` (or `(B, k)` with `lengths`) and `(k, T)`.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"`k` must be an int >= 1, got {k!r}.")
    unaries, log_a, layout = _chain(initial_probs, transition_matrix, log_likelihoods, lengths)
    best = chain_best(KMax(k), unaries, log_a, layout, method)
    loglik = chain_sum(Log(), unaries, log_a, layout, method)
    log_probs = best.scores - loglik[:, None]
    return (log_probs[0] if layout.single else log_probs), best.paths
