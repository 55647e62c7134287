"""How the suite has XLA compile (see `conftest.py`).

The suite's time is mostly XLA:CPU compilation: hundreds of programs, each run once
on small inputs. `CHEAP` is XLA's cheaper CPU code generation, set for the whole
suite (and the example scripts it runs) through `XLA_FLAGS`: no LLVM optimisation, the
classic elemental emitters instead of the fusion emitters, and one LLVM module per
program (XLA splits a module into 32 to compile the parts on parallel threads; with
two pytest workers on two cores, splitting and scheduling cost more than they save).
It computes the same operations in the same order (no fast-math), in 3-5x less compile
time for the library's parallel Kalman programs, and about halves the suite.

`DEFAULT` is XLA's default code generation, as users get it: the programs whose run
time dominates (a million steps) and the backend guard (`test_backend.py`) are
compiled with it, through `jax.jit(..., compiler_options=DEFAULT)`.
"""

import os
from importlib.metadata import version

# XLA aborts the process on a flag it does not know: the fusion-emitter switch is only
# set for the jaxlib versions it was tried with (the other two are long-standing).
_NEWER_FLAGS = {"xla_cpu_use_fusion_emitters": ((0, 10), (0, 11))}


def _known(flag: str) -> bool:
    if flag not in _NEWER_FLAGS:
        return True
    low, high = _NEWER_FLAGS[flag]
    return low <= tuple(int(p) for p in version("jaxlib").split(".")[:2]) < high


_CHEAP = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
    "xla_cpu_parallel_codegen_split_count": 1,
}
_DEFAULT = {
    "xla_backend_optimization_level": 3,
    "xla_llvm_disable_expensive_passes": False,
    "xla_cpu_use_fusion_emitters": True,
    "xla_cpu_parallel_codegen_split_count": 32,
}
CHEAP = {k: v for k, v in _CHEAP.items() if _known(k)}
DEFAULT = {k: v for k, v in _DEFAULT.items() if _known(k)}


def _flag(name, value) -> str:
    return f"--{name}={str(value).lower() if isinstance(value, bool) else value}"


def use_cheap_codegen() -> None:
    """Add `CHEAP` to `XLA_FLAGS` (before the backend starts), keeping what a user set
    there: a flag already given is left as it is."""
    given = os.environ.get("XLA_FLAGS", "")
    extra = [_flag(k, v) for k, v in CHEAP.items() if f"--{k}=" not in given]
    os.environ["XLA_FLAGS"] = " ".join(filter(None, [given, *extra]))
