"""Linear-chain CRF inference (partition function, marginals, best paths, k best
paths, entropy, samples) over a semiring, on any scan method.

The public face of the `scanalg.models.crf` family (see its documentation)."""

from .models.crf import (
    ChainMarginals as ChainMarginals,
    CRFPaths as CRFPaths,
    argmax as argmax,
    entropy as entropy,
    kbest as kbest,
    log_partition as log_partition,
    marginals as marginals,
    path_sum as path_sum,
    sample as sample,
)
