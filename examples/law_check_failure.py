"""A plausible monoid that is wrong, the law checker's report, and the fix.

A running mean looks like "average the running mean with the new value". But the mean
of two means is only the mean of the data when both halves have the same size, so
`combine` is not associative: a parallel scan (which groups elements differently from
a loop) would silently give a different answer. `scanalg.check_laws` finds a small
counterexample and says which law fails; weighting each mean by its count fixes it.

Run: python examples/law_check_failure.py
"""

import hypothesis.strategies as st
import jax.numpy as jnp
import numpy as np

import scanalg
from scanalg.strategies import arrays


class AbstractRunningMean(scanalg.AbstractMonoid):
    """Elements are pairs `(mean, count)`: the mean of `count` observations."""

    def identity(self, like):
        mean, count = like
        return jnp.zeros_like(mean), jnp.zeros_like(count)  # the mean of no data


class NaiveMean(AbstractRunningMean):
    def combine(self, earlier, later):
        (m1, n1), (m2, n2) = earlier, later
        return (m1 + m2) / 2, n1 + n2  # BUG: ignores how many values each mean has


class RunningMean(AbstractRunningMean):
    def combine(self, earlier, later):
        (m1, n1), (m2, n2) = earlier, later
        weight = (n2 / jnp.maximum(n1 + n2, 1)).astype(m1.dtype)  # FIX: weight by count
        return m1 + (m2 - m1) * weight, n1 + n2


# Elements: a mean in [-10, 10] of between 1 and 100 observations.
elements = st.tuples(
    arrays((), np.float32, min_value=-10, max_value=10),
    arrays((), np.int32, min_value=1, max_value=100),
)


def main():
    print("Checking NaiveMean ...\n")
    try:
        scanalg.check_laws(NaiveMean(), elements)
    except scanalg.LawViolation as report:
        print(report)
        print(f"\n(the report is also data: law={report.law.name!r}, error={report.error:g})")
    else:
        raise SystemExit("expected NaiveMean to fail its laws")

    print("\nThe fix, in `combine`: weight each mean by its count.")
    print("-        return (m1 + m2) / 2, n1 + n2")
    print("+        weight = (n2 / jnp.maximum(n1 + n2, 1)).astype(m1.dtype)")
    print("+        return m1 + (m2 - m1) * weight, n1 + n2")

    laws = scanalg.check_laws(RunningMean(), elements)
    print(f"\nRunningMean passes: {', '.join(law.name for law in laws)}.")

    # Now it is safe to run with any method: every one gives the running mean.
    x = jnp.asarray(np.random.default_rng(0).normal(size=1000), jnp.float32)
    elems = (x, jnp.ones_like(x, dtype=jnp.int32))
    expected = np.cumsum(np.asarray(x, np.float64)) / np.arange(1, x.size + 1)
    for method in ("sequential", "parallel", "blocked", "auto"):
        means, counts = scanalg.scan(RunningMean(), elems, method=method)
        error = float(np.max(np.abs(np.asarray(means) - expected)))
        print(
            f"  {method:>10}: mean of all {int(counts[-1])} = {float(means[-1]):+.6f}, "
            f"max error {error:.1e}"
        )
        assert error < 1e-4
    naive = {
        m: float(scanalg.scan(NaiveMean(), elems, method=m)[0][-1])
        for m in ("sequential", "parallel")
    }
    print(
        f"  NaiveMean for comparison: sequential {naive['sequential']:+.6f}, "
        f"parallel {naive['parallel']:+.6f}, truth {expected[-1]:+.6f}"
    )


if __name__ == "__main__":
    main()
