"""Hidden Markov models: the HMM monoids and dynamax-compatible inference."""

from ._dynamax import (
    compute_transition_probs as compute_transition_probs,
    hmm_backward_filter as hmm_backward_filter,
    hmm_fixed_lag_smoother as hmm_fixed_lag_smoother,
    hmm_two_filter_smoother as hmm_two_filter_smoother,
)
from ._inference import (
    HMMPosterior as HMMPosterior,
    HMMPosteriorFiltered as HMMPosteriorFiltered,
    RaggedHMMPosterior as RaggedHMMPosterior,
    RaggedHMMPosteriorFiltered as RaggedHMMPosteriorFiltered,
    hmm_filter as hmm_filter,
    hmm_posterior_mode as hmm_posterior_mode,
    hmm_posterior_sample as hmm_posterior_sample,
    hmm_smoother as hmm_smoother,
)
from ._monoids import (
    AbstractHMMBackward as AbstractHMMBackward,
    AbstractLogMatrixMonoid as AbstractLogMatrixMonoid,
    Evidence as Evidence,
    HMMBackward as HMMBackward,
    HMMForward as HMMForward,
    HMMLogBackward as HMMLogBackward,
    HMMLogForward as HMMLogForward,
    LogMatrix as LogMatrix,
    MaxPlus as MaxPlus,
    ScaledMatrix as ScaledMatrix,
)
from ._semiring import (
    hmm_posterior_entropy as hmm_posterior_entropy,
    hmm_posterior_kbest as hmm_posterior_kbest,
)
