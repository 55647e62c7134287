"""scanalg: associative scans as an algebra you can program with."""

from . import (
    crf as crf,
    hmm as hmm,
    kit as kit,
    laws as laws,
    lgssm as lgssm,
    monoids as monoids,
    semirings as semirings,
)
from ._laws import (
    Law as Law,
    LawViolation as LawViolation,
    action_compatibility as action_compatibility,
    action_identity as action_identity,
    action_input_agrees as action_input_agrees,
    associativity as associativity,
    check_laws as check_laws,
    left_identity as left_identity,
    right_identity as right_identity,
    scan_agrees_with_fold as scan_agrees_with_fold,
)
from ._methods import (
    METHODS as METHODS,
    AbstractScanMethod as AbstractScanMethod,
    Auto as Auto,
    Blocked as Blocked,
    Parallel as Parallel,
    Sequential as Sequential,
    Sharded as Sharded,
    register_method as register_method,
)
from ._monoid import AbstractMonoid as AbstractMonoid
from ._scan import reduce as reduce, scan as scan
from .hmm import (
    HMMPosterior as HMMPosterior,
    HMMPosteriorFiltered as HMMPosteriorFiltered,
    compute_transition_probs as compute_transition_probs,
    hmm_backward_filter as hmm_backward_filter,
    hmm_filter as hmm_filter,
    hmm_fixed_lag_smoother as hmm_fixed_lag_smoother,
    hmm_posterior_mode as hmm_posterior_mode,
    hmm_posterior_sample as hmm_posterior_sample,
    hmm_smoother as hmm_smoother,
    hmm_two_filter_smoother as hmm_two_filter_smoother,
)
from .lgssm import (
    LGSSMParams as LGSSMParams,
    PosteriorGSSMFiltered as PosteriorGSSMFiltered,
    PosteriorGSSMSmoothed as PosteriorGSSMSmoothed,
    lgssm_filter as lgssm_filter,
    lgssm_posterior_sample as lgssm_posterior_sample,
    lgssm_smoother as lgssm_smoother,
    make_lgssm_params as make_lgssm_params,
)

# isort: split
from .lgssm import (
    LGSSMDynamics as LGSSMDynamics,
    LGSSMEmissions as LGSSMEmissions,
    LGSSMInitial as LGSSMInitial,
)
