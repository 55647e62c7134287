"""Testing tools.

- `check_method(method)`: the conformance battery every scan method must pass
  (needs no Hypothesis).
- `strategies`: Hypothesis strategies for the built-in monoids (also importable as
  `scanalg.strategies`; needs Hypothesis, in the `test` extra).
"""

import importlib

from ._conformance import (
    LENGTHS as LENGTHS,
    MethodConformanceError as MethodConformanceError,
    check_method as check_method,
)


def __getattr__(name: str):
    if name == "strategies":  # imported on first use: it needs Hypothesis
        return importlib.import_module(".strategies", __name__)
    raise AttributeError(f"module 'scanalg.testing' has no attribute {name!r}")
