"""The laws of a monoid and its action, and `check_laws`, a Hypothesis-driven checker.

- `_law`: the laws as named objects (`Law`), each a pure function returning the two
  sides of its equation, and the registry-derived default methods;
- `_fold`: the reference every scan method is checked against;
- `_equality`: dtype-aware comparison of the sides, and error sizes for reports;
- `_check`: `check_laws`, which draws inputs with Hypothesis, evaluates every law
  under `jit` (compiled once per shape) and raises `LawViolation`.
"""

from ._check import (
    LawViolation as LawViolation,
    check_laws as check_laws,
    jit_small as jit_small,
)
from ._equality import allclose as allclose, error_size as error_size, tolerance as tolerance
from ._fold import fold as fold
from ._law import (
    Law as Law,
    action_compatibility as action_compatibility,
    action_identity as action_identity,
    action_input_agrees as action_input_agrees,
    all_laws as all_laws,
    associativity as associativity,
    left_identity as left_identity,
    registered_methods as registered_methods,
    right_identity as right_identity,
    scan_agrees_with_fold as scan_agrees_with_fold,
)

default_methods = registered_methods()
"""One instance of every registered scan method (with default arguments), as the
registry was when `scanalg` was imported. `check_laws` without `methods=` reads the
registry when it is called."""
