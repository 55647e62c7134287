"""The shared kit for writing a model family: what `scanalg.hmm`, `scanalg.lgssm` and
`scanalg.crf` are built from, public so that a family in another package reuses it
instead of copying it (see the how-to "A new model family").

- Ragged batches: `Segments` (sequences packed along time; `lengths=` for free).
- Argument checks: `checks_arguments` (shapes before tracing, with or without a runtime
  type checker), `positive_count`, `float_dtype`, and value checks under `jit`
  (`attach_checks` with `nonfinite`, `distribution_problem`, `asymmetric`;
  `any_failed`).
- Numerics: `safe_log`, `logsumexp`, `normalise`, `tree_sum`, `compensated_sum`,
  `inverse_cdf`.
- Linear algebra for Gaussians: `symmetrize`, `psd_cholesky`, `gaussian_log_density`.
"""

from ._linalg import (
    gaussian_log_density as gaussian_log_density,
    psd_cholesky as psd_cholesky,
    symmetrize as symmetrize,
)
from ._numerics import (
    compensated_sum as compensated_sum,
    inverse_cdf as inverse_cdf,
    logsumexp as logsumexp,
    normalise as normalise,
    safe_log as safe_log,
    tree_sum as tree_sum,
)
from ._segments import Segments as Segments
from ._validate import (
    any_failed as any_failed,
    asymmetric as asymmetric,
    attach_checks as attach_checks,
    checks_arguments as checks_arguments,
    distribution_problem as distribution_problem,
    float_dtype as float_dtype,
    nonfinite as nonfinite,
    positive_count as positive_count,
)
