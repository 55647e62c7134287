"""Hidden Markov model inference, dynamax-compatible, on any scan method.

The public face of the `scanalg.models.hmm` family (see its documentation)."""

from .models.hmm import (
    AbstractHMMBackward as AbstractHMMBackward,
    AbstractLogMatrixMonoid as AbstractLogMatrixMonoid,
    Evidence as Evidence,
    HMMBackward as HMMBackward,
    HMMForward as HMMForward,
    HMMLogBackward as HMMLogBackward,
    HMMLogForward as HMMLogForward,
    HMMPosterior as HMMPosterior,
    HMMPosteriorFiltered as HMMPosteriorFiltered,
    LogMatrix as LogMatrix,
    MaxPlus as MaxPlus,
    RaggedHMMPosterior as RaggedHMMPosterior,
    RaggedHMMPosteriorFiltered as RaggedHMMPosteriorFiltered,
    ScaledMatrix as ScaledMatrix,
    compute_transition_probs as compute_transition_probs,
    hmm_backward_filter as hmm_backward_filter,
    hmm_filter as hmm_filter,
    hmm_fixed_lag_smoother as hmm_fixed_lag_smoother,
    hmm_posterior_entropy as hmm_posterior_entropy,
    hmm_posterior_kbest as hmm_posterior_kbest,
    hmm_posterior_mode as hmm_posterior_mode,
    hmm_posterior_sample as hmm_posterior_sample,
    hmm_smoother as hmm_smoother,
    hmm_two_filter_smoother as hmm_two_filter_smoother,
)
