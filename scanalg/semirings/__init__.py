"""Semirings, the matrix monoid over a semiring, and chain dynamic programs.

One chain dynamic program answers different questions by the semiring chosen at call
time: `Log` gives partition functions (and marginals, by `jax.grad` or a backward
scan), `Max` the best path, `KMax(k)` the k best paths, `Entropy` the entropy of the
chain's distribution. `scanalg.crf` and `scanalg.hmm` build on it.
"""

from ._base import AbstractSemiring as AbstractSemiring
from ._chain import (
    ChainBest as ChainBest,
    ChainForward as ChainForward,
    ChainMarginals as ChainMarginals,
    backtrack as backtrack,
    chain_best as chain_best,
    chain_forward as chain_forward,
    chain_marginals as chain_marginals,
    chain_sample as chain_sample,
    chain_sum as chain_sum,
    segment_sums as segment_sums,
)
from ._instances import (
    Entropy as Entropy,
    KMax as KMax,
    Log as Log,
    Max as Max,
    Std as Std,
)
from ._matmul import ChainMessages as ChainMessages, SemiringMatMul as SemiringMatMul
