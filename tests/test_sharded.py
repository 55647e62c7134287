"""`scanalg.Sharded`: the scan split over time across devices.

The checks that need several devices run in two subprocesses (4 and 8 forced CPU
devices; `XLA_FLAGS` must be set before JAX starts), started together, each running
its checks of `tests/sharded_worker.py` once and reporting JSON; each check is one
test here. Bad input is tested in this process.
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from sharded_worker import CHECKS

import scanalg

DEVICE_COUNTS = (4, 8)
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sharded_worker.py")


@pytest.fixture(scope="module")
def worker_results():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    procs = {
        n: subprocess.Popen(
            [sys.executable, WORKER, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in DEVICE_COUNTS
    }
    results = {}
    for n, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=900)
        if proc.returncode != 0 or not stdout.strip():
            pytest.fail(f"worker with {n} devices failed ({proc.returncode}):\n{stderr[-4000:]}")
        report = json.loads(stdout.strip().splitlines()[-1])
        assert report["devices"] == n
        results[n] = report["results"]
    return results


@pytest.mark.parametrize(
    "devices, check",
    [(n, check) for n in DEVICE_COUNTS for check in CHECKS[n]],
    ids=[f"{n}dev-{check}" for n in DEVICE_COUNTS for check in CHECKS[n]],
)
def test_sharded(worker_results, devices, check):
    ok, detail, _ = worker_results[devices][check]
    assert ok, f"{check} on {devices} devices: {detail}"


def _mesh(*names):
    return Mesh(np.array(jax.devices()[:1]).reshape((1,) * len(names)), names)


def test_mesh_without_axis():
    with pytest.raises(ValueError, match=r"axes are \('batch', 'time'\)"):
        scanalg.Sharded(_mesh("batch", "time"), "seq")


def test_bad_arguments():
    with pytest.raises(TypeError, match="jax.sharding.Mesh"):
        scanalg.Sharded("mesh", "time")
    with pytest.raises(TypeError, match="single-device scan method"):
        scanalg.Sharded(_mesh("time"), "time", local=scanalg.Sharded(_mesh("time"), "time"))


def test_one_device():
    # A mesh of one device is a plain sequential scan, also under jit and grad.
    method = scanalg.Sharded(_mesh("time"), "time")
    xs = jnp.linspace(0.5, 1.5, 7, dtype=jnp.float64)

    def loss(xs, method):
        ys = scanalg.scan(
            scanalg.monoids.Product(), xs, init=jnp.array(2.0), reverse=True, method=method
        )
        return jnp.sum(ys**2)

    got = jax.jit(jax.value_and_grad(loss), static_argnums=1)(xs, method)
    want = jax.value_and_grad(loss)(xs, scanalg.Sequential())
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
