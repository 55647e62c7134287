"""The backend computes what it is asked to. jaxlib 0.10.2's XLA:CPU returned wrong
rows (from row 2^15 / K on) for `f * sum(A * s, axis=1)` under `jit(vmap(...))` in
float32, for batches of about 7 000 to 26 000 rows, and the HMM smoother with it
(pyproject.toml excludes that version). This guards the environment the suite runs in."""

import jax
import jax.numpy as jnp
import numpy as np
from xla_codegen import DEFAULT


def test_float32_vmapped_reduction_fusion():
    rng = np.random.default_rng(0)
    n, k = 7000, 5
    a = rng.dirichlet(np.ones(k), size=k).astype(np.float32)
    f = rng.dirichlet(np.ones(k), size=n).astype(np.float32)
    s = rng.dirichlet(np.ones(k), size=n).astype(np.float32)

    def step(s, f):
        moved = f * jnp.sum(a * s[None, :], axis=1)
        return moved / jnp.sum(moved)

    # XLA's default code generation, as users get it (not the suite's cheaper one)
    got = np.asarray(jax.jit(jax.vmap(step), compiler_options=DEFAULT)(s, f), np.float64)
    want = (s.astype(np.float64) @ a.T.astype(np.float64)) * f
    want /= want.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
