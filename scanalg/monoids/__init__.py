"""Ready monoid instances."""

from ._basic import (
    AbstractElementwise as AbstractElementwise,
    Affine as Affine,
    LogAddExp as LogAddExp,
    MatMul as MatMul,
    Max as Max,
    Min as Min,
    Product as Product,
    Sum as Sum,
)
from ._combinators import (
    AbstractComponentwise as AbstractComponentwise,
    Dual as Dual,
    Masked as Masked,
    Pair as Pair,
    Segmented as Segmented,
    Struct as Struct,
)
from ._composition import FiniteFunction as FiniteFunction
from ._diagonal import DiagonalAffine as DiagonalAffine
from ._hmm import (
    Evidence as Evidence,
    HMMBackward as HMMBackward,
    HMMForward as HMMForward,
    LogMatrix as LogMatrix,
    MaxPlus as MaxPlus,
    ScaledMatrix as ScaledMatrix,
)

# isort: split
from ._gaussian import (
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
