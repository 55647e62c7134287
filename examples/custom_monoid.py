"""A user-defined monoid: streaming mean and variance, merged with Chan's formula.

An element summarises a chunk of data as (count n, mean m, M2 = sum of squared
deviations from the mean). Two summaries merge exactly (Chan, Golub & LeVeque, 1979):

    n = n_a + n_b,  d = m_b - m_a,  m = m_a + d n_b / n,  M2 = M2_a + M2_b + d^2 n_a n_b / n

so a scan over one-observation summaries (1, x_t, 0) gives the running mean and
variance M2 / n, by any method. We check the laws, scan, and compare with numpy.

Run: python examples/custom_monoid.py      (SCANALG_EXAMPLE_SMALL=1 for a tiny run)
"""

import os

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np

import scanalg
from scanalg import strategies

SMALL = bool(os.environ.get("SCANALG_EXAMPLE_SMALL"))


class MeanVar(scanalg.AbstractMonoid):
    r"""Summaries $(n, m, M_2)$ of chunks of data; `combine` merges two chunks."""

    def combine(self, earlier, later):
        (na, ma, qa), (nb, mb, qb) = earlier, later
        n = na + nb
        weight = jnp.where(n > 0, nb / jnp.where(n > 0, n, 1), 0)  # n_b / n, 0 if empty
        delta = mb - ma
        return n, ma + delta * weight, qa + qb + delta * delta * na * weight

    def identity(self, like):
        return jax.tree.map(jnp.zeros_like, like)  # the summary of no data


def observation(x):
    """The summary of one observation x: (1, x, 0)."""
    return np.ones_like(x), x, np.zeros_like(x)


def main():
    # Valid summaries are hard to draw directly (M2 must be consistent with n), so build
    # them operationally: merge 1-4 single observations, or take the empty summary.
    single = strategies.arrays((), np.float32, min_value=-10, max_value=10).map(observation)
    summaries = st.one_of(
        strategies.products(MeanVar().combine, single, max_factors=4),
        st.just(tuple(np.zeros((), np.float32) for _ in range(3))),
    )
    laws = scanalg.check_laws(MeanVar(), summaries, max_examples=15 if SMALL else None)
    print("MeanVar obeys: " + ", ".join(law.name for law in laws))

    T = 200 if SMALL else 100_000
    x = np.random.default_rng(0).normal(3.0, 2.0, size=T).astype(np.float32)
    elems = observation(jnp.asarray(x))

    # numpy reference in float64: running mean and (population) variance.
    k = np.arange(1, T + 1)
    mean = np.cumsum(x, dtype=np.float64) / k
    var = np.cumsum(np.square(x - x.mean(), dtype=np.float64)) / k - (mean - x.mean()) ** 2

    print(f"\nRunning mean and variance of {T:,} float32 observations, every method:")
    for method in ("sequential", "parallel", "blocked", "auto"):
        n, m, m2 = scanalg.scan(MeanVar(), elems, method=method)
        mean_err = np.max(np.abs(np.asarray(m) - mean) / np.abs(mean))
        var_err = np.max(np.abs(np.asarray(m2 / n)[1:] - var[1:]) / var[1:])
        print(
            f"  {method:>10}: mean {float(m[-1]):.5f}, variance {float(m2[-1] / n[-1]):.5f}"
            f"   (max relative error vs numpy: mean {mean_err:.1e}, variance {var_err:.1e})"
        )
        assert int(n[-1]) == T and mean_err < 1e-4 and var_err < 1e-3
    print(f"  {'numpy':>10}: mean {mean[-1]:.5f}, variance {var[-1]:.5f}")


if __name__ == "__main__":
    main()
