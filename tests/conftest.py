"""Test-wide JAX settings (before any JAX backend use) and Hypothesis profiles.

- Four in-process CPU devices, so `scanalg.Sharded` runs in this process
  (`helpers.all_methods` has one over a mesh of them).
- Compiled programs are kept across test modules (later modules and eager operations
  reuse them) until a process holds many memory maps: each XLA:CPU executable holds
  some, and a worker that kept every program of the suite reached the kernel's limit
  (`vm.max_map_count`, 65530) and crashed inside XLA's `backend_compile_and_load`.
  Past `_MAX_MAPS` (or after every module where `/proc/self/maps` does not exist), a
  module's end releases them (`jax.clear_caches`).
- A persistent compilation cache for the run (`JAX_COMPILATION_CACHE_DIR`, a fresh
  temporary directory, removed at the end): the pytest workers and the example
  scripts the suite runs share their compiled programs instead of each compiling
  its own, and a program released by `jax.clear_caches` is read back, not compiled.
- XLA's cheaper CPU code generation (`xla_codegen.CHEAP`, through `XLA_FLAGS`, so
  the example scripts the suite runs get it too): the suite is mostly compilation.
  Programs whose run time dominates opt back in to the default (`xla_codegen.DEFAULT`).
- Python's cyclic garbage collector runs less often (`gc_settings`), and what is
  imported and collected before the first test is frozen out of its scans.
- float64 on, and strict promotion: no implicit rank promotion (broadcasting arrays
  of different ranks) and no implicit dtype promotion, as equinox and diffrax test.
"""

import gc
import os
import shutil
import tempfile

import jax
import pytest
from gc_settings import THRESHOLDS
from hypothesis import HealthCheck, settings
from xla_codegen import use_cheap_codegen

use_cheap_codegen()  # (before the backend starts)

# The controller process creates the cache directory; the pytest-xdist workers and the
# scripts the suite runs inherit it through the environment. A directory the user
# already set is used and kept.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="scanalg-tests-xla-")
# Every program (the defaults skip those that compile in under a second).
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update(
    "jax_persistent_cache_min_compile_time_secs",
    float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
)
jax.config.update(
    "jax_persistent_cache_min_entry_size_bytes",
    int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]),
)

jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


gc.set_threshold(*THRESHOLDS)


def pytest_collection_finish(session):
    gc.freeze()


_MAX_MAPS = 30_000


def _many_maps() -> bool:
    try:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f) > _MAX_MAPS
    except OSError:
        return True


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    yield
    if _many_maps():
        jax.clear_caches()
        gc.unfreeze()  # (a frozen object is never collected)
        gc.collect()
        gc.freeze()


def pytest_unconfigure(config):
    if _OWN_CACHE and not hasattr(config, "workerinput"):  # (the controller)
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
