"""Test-wide JAX settings (before any JAX backend use) and Hypothesis profiles.

- Four in-process CPU devices, so `scanalg.Sharded` runs in this process
  (`helpers.all_methods` has one over a mesh of them).
- Compiled programs are released after every test module (`jax.clear_caches`): each
  XLA:CPU executable holds memory maps, and a worker that kept every program of the
  suite reached the kernel's limit (`vm.max_map_count`, 65530) and crashed inside
  XLA's `backend_compile_and_load`.
- XLA's cheaper CPU code generation (`xla_codegen.CHEAP`, through `XLA_FLAGS`, so
  the example scripts the suite runs get it too): the suite is mostly compilation.
  Programs whose run time dominates opt back in to the default (`xla_codegen.DEFAULT`).
- float64 on, and strict promotion: no implicit rank promotion (broadcasting arrays
  of different ranks) and no implicit dtype promotion, as equinox and diffrax test.
"""

import gc
import os

import jax
import pytest
from hypothesis import HealthCheck, settings
from xla_codegen import use_cheap_codegen

use_cheap_codegen()  # (before the backend starts)

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


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    yield
    jax.clear_caches()
    gc.collect()
