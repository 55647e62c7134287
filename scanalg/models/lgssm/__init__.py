"""Linear-Gaussian state-space models: the Kalman monoids and inference."""

from ._dynamax import (
    ParamsLGSSM as ParamsLGSSM,
    as_lgssm_params as as_lgssm_params,
    make_lgssm_params as make_lgssm_params,
)
from ._inference import (
    LGSSMDynamics as LGSSMDynamics,
    LGSSMEmissions as LGSSMEmissions,
    LGSSMInitial as LGSSMInitial,
    LGSSMParams as LGSSMParams,
    PosteriorGSSMFiltered as PosteriorGSSMFiltered,
    PosteriorGSSMSmoothed as PosteriorGSSMSmoothed,
    lgssm_filter as lgssm_filter,
    lgssm_posterior_sample as lgssm_posterior_sample,
    lgssm_smoother as lgssm_smoother,
)
from ._monoids import (
    FilterElement as FilterElement,
    FilterGain as FilterGain,
    FilterState as FilterState,
    KalmanFilter as KalmanFilter,
    RTSSmoother as RTSSmoother,
    SmootherElement as SmootherElement,
    SmootherState as SmootherState,
    filter_element as filter_element,
    filter_gain as filter_gain,
    kalman_filter_elements as kalman_filter_elements,
    rts_smoother_elements as rts_smoother_elements,
)

# dynamax's names of the parameter parts (same fields, same order).
ParamsLGSSMInitial = LGSSMInitial
ParamsLGSSMDynamics = LGSSMDynamics
ParamsLGSSMEmissions = LGSSMEmissions
