"""`scanalg.kit.Segments`: per-sequence reductions against plain Python over the lengths."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scanalg.kit import Segments


@pytest.mark.parametrize("lengths", [None, [2, 3, 1, 4]], ids=["single", "batch"])
def test_any_flags_each_sequence(lengths):
    n = 10
    segs = Segments(None if lengths is None else jnp.asarray(lengths), n)
    bounds = np.cumsum([0, *(lengths or [n])])
    for seed in range(4):
        flags = np.random.default_rng(seed).random(n) < 0.15
        expected = [flags[a:b].any() for a, b in zip(bounds[:-1], bounds[1:])]
        np.testing.assert_array_equal(jax.jit(lambda f: segs.any(f))(jnp.asarray(flags)), expected)
    # no flag anywhere, and one flag at a sequence's last step
    np.testing.assert_array_equal(segs.any(jnp.zeros(n, bool)), np.zeros(len(expected), bool))
    last = jnp.zeros(n, bool).at[bounds[1] - 1].set(True)
    np.testing.assert_array_equal(segs.any(last), np.arange(len(expected)) == 0)
