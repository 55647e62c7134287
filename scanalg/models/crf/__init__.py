"""Linear-chain conditional random fields: inference over a semiring."""

from ...semirings import ChainMarginals as ChainMarginals
from ._inference import (
    CRFPaths as CRFPaths,
    argmax as argmax,
    entropy as entropy,
    kbest as kbest,
    log_partition as log_partition,
    marginals as marginals,
    path_sum as path_sum,
    sample as sample,
)
