"""Quickstart: define a monoid, check its laws, scan it with every method.

The monoid is "running maximum with its position": elements are pairs (value, index)
and `combine` keeps the larger value, the earlier index on ties. Scanning it gives,
for every t, the maximum of x_0..x_t and where it occurred.

Run: python examples/quickstart.py      (SCANALG_EXAMPLE_SMALL=1 for a tiny run)
"""

import os
import statistics
import time

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np

import scanalg
from scanalg.strategies import arrays

SMALL = bool(os.environ.get("SCANALG_EXAMPLE_SMALL"))


class RunningArgMax(scanalg.AbstractMonoid):
    r"""$(v_1, i_1) \otimes (v_2, i_2)$ = the pair with the larger value (the smaller
    index on ties): a lexicographic maximum, so associative. Identity $(-\infty, i_{\max})$."""

    def combine(self, earlier, later):
        (v1, i1), (v2, i2) = earlier, later
        later_wins = (v2 > v1) | ((v2 == v1) & (i2 < i1))
        return jnp.where(later_wins, v2, v1), jnp.where(later_wins, i2, i1)

    def identity(self, like):
        value, index = like
        return jnp.full_like(value, -jnp.inf), jnp.full_like(index, jnp.iinfo(index.dtype).max)


def main():
    # 1. Check the laws on elements drawn by Hypothesis (small values, so ties are common).
    elements = st.tuples(
        arrays((), np.float32, min_value=-3, max_value=3, extra=st.just(-np.inf)),
        arrays((), np.int32, min_value=0, max_value=1000),
    )
    start = time.perf_counter()
    laws = scanalg.check_laws(RunningArgMax(), elements, max_examples=20 if SMALL else None)
    print(f"Laws hold ({time.perf_counter() - start:.1f} s): " + ", ".join(x.name for x in laws))

    # 2. Scan a random sequence with every method; all must give the same answer.
    T = 1_000 if SMALL else 100_000
    x = jax.random.normal(jax.random.key(0), (T,))
    elems = (x, jnp.arange(T, dtype=jnp.int32))
    x_np = np.asarray(x)
    expected_max = np.maximum.accumulate(x_np)
    record = x_np > np.concatenate([[-np.inf], expected_max[:-1]])  # a strictly new maximum
    expected_arg = np.maximum.accumulate(np.where(record, np.arange(T), 0))

    print(f"\nscan of RunningArgMax over T = {T:,} on {jax.default_backend()}:")
    print(f"{'method':>12} {'compile [s]':>12} {'run [ms]':>10}   max, argmax at the end")
    for method in ("sequential", "parallel", "blocked", "auto"):
        run = jax.jit(lambda e, method=method: scanalg.scan(RunningArgMax(), e, method=method))
        start = time.perf_counter()
        compiled = run.lower(elems).compile()
        compile_time = time.perf_counter() - start
        times = []
        for _ in range(5):
            start = time.perf_counter()
            values, where = jax.block_until_ready(compiled(elems))
            times.append(time.perf_counter() - start)
        assert np.array_equal(np.asarray(values), expected_max)  # max is exact
        assert np.array_equal(np.asarray(where), expected_arg)
        print(
            f"{method:>12} {compile_time:>12.3f} {1e3 * statistics.median(times):>10.3f}"
            f"   {float(values[-1]):.4f} at t = {int(where[-1])}"
        )
    print("\nEvery method agrees with numpy (bit for bit): timings are medians of 5 runs.")


if __name__ == "__main__":
    main()
