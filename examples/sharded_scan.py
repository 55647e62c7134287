"""An HMM filter over a million steps, split across devices with `scanalg.Sharded`.

On a host with several accelerators this runs unchanged on them. On a CPU it makes
8 devices out of the host (`jax.config.update("jax_num_cpu_devices", 8)`), which
share however many cores the host has: the speed-up is bounded by the cores, and the
sharded scan does about twice the work of the sequential one (a reduction pass, then
the scan), so a 2-core machine shows no gain while a 16-core one shows some.

Run: `python examples/sharded_scan.py` (`SCANALG_EXAMPLE_SMALL=1`: T = 10^4).
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import scanalg
from scanalg.hmm import hmm_filter

# Eight CPU devices; must happen before JAX first uses a device (no effect on GPUs).
jax.config.update("jax_num_cpu_devices", 8)

T = 10_000 if os.environ.get("SCANALG_EXAMPLE_SMALL") else 1_000_000
K = 4

# One mesh axis over every device; the time axis of the data is split along it.
devices = jax.devices()
mesh = Mesh(np.array(devices), ("time",))
T -= T % len(devices)  # a multiple of the device count keeps the outputs sharded

# A sticky 4-state chain and random log-likelihoods, float32.
key_a, key_ll = jax.random.split(jax.random.key(0))
initial_probs = jnp.full(K, 1.0 / K)
transition_matrix = 0.9 * jnp.eye(K) + 0.1 * jax.random.dirichlet(key_a, jnp.ones(K), (K,))
log_likelihoods = jax.random.normal(key_ll, (T, K))

methods = {
    "Sequential, one device": scanalg.Sequential(),
    f"Sharded over {len(devices)} devices": scanalg.Sharded(mesh, "time"),
}
inputs = {
    # The single-device run gets its data on one device; the sharded run gets it
    # already split along time, as it would be when it does not fit on one device.
    "Sequential, one device": jax.device_put(log_likelihoods, devices[0]),
    f"Sharded over {len(devices)} devices": jax.device_put(
        log_likelihoods, NamedSharding(mesh, PartitionSpec("time"))
    ),
}


def best_of(fn, *args, repeats=3):
    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


print(f"HMM filter, T = {T:,}, K = {K}, {len(devices)} {devices[0].platform} devices")
results, best = {}, {}
for name, method in methods.items():
    run = jax.jit(
        lambda ll, method=method: hmm_filter(initial_probs, transition_matrix, ll, method=method)
    )
    best[name] = best_of(run, inputs[name])
    results[name] = run(inputs[name])
    print(f"  {name:<28} {best[name] * 1e3:9.1f} ms")

seq, shard = (jax.device_get(r) for r in results.values())
first, second = methods
print(f"  speed-up: {best[first] / best[second]:.2f}x on {os.cpu_count()} CPU cores")
print("  same log-likelihood:", np.allclose(seq.marginal_loglik, shard.marginal_loglik, rtol=1e-4))
difference = np.max(np.abs(seq.filtered_probs - shard.filtered_probs))
print(f"  max |filtered difference|: {difference:.1e}")
print("  filtered_probs sharding:", results[second].filtered_probs.sharding.spec)
