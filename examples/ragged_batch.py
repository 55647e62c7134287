"""Ragged batches: many HMM sequences of different lengths in one call.

1000 sequences of random lengths 10-5000 are concatenated along time, and
`lengths=` tells the HMM functions where each ends. One segmented scan then samples
every posterior path at once: no padding, no Python loop. We check the answers
against running sequences one by one, and time three ways of doing the batch:
packed (one call), padded to the longest length (`vmap`), and a Python loop.
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import scanalg

SMALL = os.environ.get("SCANALG_EXAMPLE_SMALL") == "1"
B, MIN_LEN, MAX_LEN, LOOPED = (40, 10, 500, 2) if SMALL else (1000, 10, 5000, 10)
K = 4

rng = np.random.default_rng(0)
lengths = rng.integers(MIN_LEN, MAX_LEN + 1, size=B)
n = int(lengths.sum())
edges = np.concatenate([[0], np.cumsum(lengths)])
pi = jnp.asarray(rng.dirichlet(np.ones(K)), jnp.float32)
A = jnp.asarray(0.8 * np.eye(K) + 0.2 * rng.dirichlet(np.ones(K), size=K), jnp.float32)
ll = jnp.asarray(rng.normal(size=(n, K)) * 2, jnp.float32)  # log p(y_t | z_t = k), packed
key = jax.random.key(0)


def timed(fn, *args):
    """(result, seconds of the first call incl. compilation, seconds of a second call)."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    t1 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return out, t1 - t0, time.perf_counter() - t1


# 1. Packed: one call for all sequences.
(loglik, states), packed_first, packed = timed(
    lambda k: scanalg.hmm_posterior_sample(k, pi, A, ll, lengths=lengths), key
)
smoothed = scanalg.hmm_smoother(pi, A, ll, lengths=lengths).smoothed_probs

# 2. Padded to the longest sequence, vmapped. Padding steps have log-likelihood 0
# (no evidence), which changes neither the likelihood nor the posterior of the rest.
index = np.minimum(edges[:-1, None] + np.arange(lengths.max()), n - 1)
padded_ll = jnp.where((np.arange(lengths.max()) < lengths[:, None])[..., None], ll[index], 0.0)
vmapped = jax.jit(jax.vmap(lambda k, x: scanalg.hmm_posterior_sample(k, pi, A, x)))
(padded_loglik, _), padded_first, padded = timed(vmapped, jax.random.split(key, B), padded_ll)

# 3. A Python loop over the first LOOPED sequences (each new length compiles anew).
loop_first = loop = 0.0
looped = []
for b in range(LOOPED):
    x = ll[edges[b] : edges[b + 1]]
    out, first, second = timed(lambda k, x=x: scanalg.hmm_posterior_sample(k, pi, A, x), key)
    looped.append((out[0], scanalg.hmm_smoother(pi, A, x).smoothed_probs))
    loop_first, loop = loop_first + first, loop + second

# Checks against the per-sequence runs.
loop_loglik = np.array([x[0] for x in looped])
np.testing.assert_allclose(loglik[:LOOPED], loop_loglik, rtol=1e-4)
np.testing.assert_allclose(loglik, padded_loglik, rtol=1e-4)
alone = np.concatenate([x[1] for x in looped])
np.testing.assert_allclose(smoothed[: edges[LOOPED]], alone, atol=1e-4)
# The sampled paths follow the posterior: state frequencies match the smoothed marginals.
freq = np.bincount(np.asarray(states), minlength=K) / n
np.testing.assert_allclose(freq, np.asarray(smoothed).mean(0), atol=5e-3 if not SMALL else 5e-2)
assert states.shape == (n,) and 0 <= int(states.min()) and int(states.max()) < K

scale = B / LOOPED
print(
    f"{B} sequences, lengths {lengths.min()}-{lengths.max()}, {n} steps, K = {K}, "
    f"{jax.default_backend()}"
)
print(f"padding would scan {B * lengths.max()} steps ({B * lengths.max() / n:.1f}x)")
print(f"{'':34s}{'first call (s)':>16s}{'next call (s)':>15s}")
print(f"{'packed, one call':34s}{packed_first:16.2f}{packed:15.2f}")
print(f"{'padded to the longest, vmap':34s}{padded_first:16.2f}{padded:15.2f}")
print(
    f"{f'Python loop (x{scale:.0f} from {LOOPED} seqs)':34s}"
    f"{loop_first * scale:16.2f}{loop * scale:15.2f}"
)
print("checks passed: per-sequence log-likelihoods, smoothed marginals, state frequencies")
