"""General algebra: ready monoids and combinators.

Model element types and monoids live in their families (`scanalg.hmm`,
`scanalg.lgssm`); their old names here still work (see `__getattr__`).
"""

import importlib

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

# Names that lived here before the model families became packages. They resolve
# lazily to the family's public module, so this layer imports no model code.
_MOVED = {
    **dict.fromkeys(
        ["Evidence", "HMMBackward", "HMMForward", "LogMatrix", "MaxPlus", "ScaledMatrix"],
        "scanalg.hmm",
    ),
    **dict.fromkeys(
        [
            "FilterElement",
            "FilterGain",
            "FilterState",
            "KalmanFilter",
            "RTSSmoother",
            "SmootherElement",
            "SmootherState",
            "filter_element",
            "filter_gain",
            "kalman_filter_elements",
            "rts_smoother_elements",
        ],
        "scanalg.lgssm",
    ),
}


def __getattr__(name: str):
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'scanalg.monoids' has no attribute {name!r}")
