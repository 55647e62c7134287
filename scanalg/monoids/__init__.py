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
from ._composition import FiniteFunction as FiniteFunction
