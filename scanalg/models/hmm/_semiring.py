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
from ..._segments import Segments
from ...semirings import (
    Entropy,
    KMax,
    Log,
    chain_best,
    chain_sum,
)
from ._inference import checked, validated_model

_Transitions = (
    Float[Array, "num_states num_states"]
    | Float[Array, "num_timesteps_minus_1 num_states num_states"]
)


def _chain(initial_probs, transition_matrix, log_likelihoods, lengths):
    """The chain's `(unaries, log_transitions, layout)`, the values checked as for every
    HMM function (`validated_model`)."""
    model = validated_model(initial_probs, transition_matrix, log_likelihoods, lengths)
    layout = Segments(lengths, model.ll.shape[0])
    unaries = model.ll + jnp.where(layout.starts[:, None], safe_log(model.pi)[None], 0)
    return unaries, safe_log(model.a), layout


@checked
@eqx.filter_jit
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


@checked
@eqx.filter_jit
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
    unaries, log_a, layout = _chain(initial_probs, transition_matrix, log_likelihoods, lengths)
    best = chain_best(KMax(k), unaries, log_a, layout, method)
    loglik = chain_sum(Log(), unaries, log_a, layout, method)
    log_probs = best.scores - loglik[:, None]
    return (log_probs[0] if layout.single else log_probs), best.paths
