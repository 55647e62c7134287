"""Linear-Gaussian state-space model inference (Kalman filtering, smoothing, sampling)
on any scan method.

The public face of the `scanalg.models.lgssm` family (see its documentation)."""

from .models.lgssm import (
    FilterElement as FilterElement,
    FilterGain as FilterGain,
    FilterState as FilterState,
    KalmanFilter as KalmanFilter,
    LGSSMDynamics as LGSSMDynamics,
    LGSSMEmissions as LGSSMEmissions,
    LGSSMInitial as LGSSMInitial,
    LGSSMParams as LGSSMParams,
    ParamsLGSSM as ParamsLGSSM,
    ParamsLGSSMDynamics as ParamsLGSSMDynamics,
    ParamsLGSSMEmissions as ParamsLGSSMEmissions,
    ParamsLGSSMInitial as ParamsLGSSMInitial,
    PosteriorGSSMFiltered as PosteriorGSSMFiltered,
    PosteriorGSSMSmoothed as PosteriorGSSMSmoothed,
    RTSSmoother as RTSSmoother,
    SmootherElement as SmootherElement,
    SmootherState as SmootherState,
    as_lgssm_params as as_lgssm_params,
    filter_element as filter_element,
    filter_gain as filter_gain,
    kalman_filter_elements as kalman_filter_elements,
    lgssm_filter as lgssm_filter,
    lgssm_posterior_sample as lgssm_posterior_sample,
    lgssm_smoother as lgssm_smoother,
    make_lgssm_params as make_lgssm_params,
    rts_smoother_elements as rts_smoother_elements,
)
