"""The laws of monoids and actions, as named objects, and the checker that tests them.

Each law is a `Law`: call `law(monoid, *inputs)` to get its two sides `(lhs, rhs)`.
`check_laws` draws the inputs with Hypothesis and raises `LawViolation` on failure.
"""

from ._laws import (
    Law as Law,
    LawViolation as LawViolation,
    action_compatibility as action_compatibility,
    action_identity as action_identity,
    action_input_agrees as action_input_agrees,
    all_laws as all_laws,
    allclose as allclose,
    associativity as associativity,
    check_laws as check_laws,
    default_methods as default_methods,
    fold as fold,
    left_identity as left_identity,
    registered_methods as registered_methods,
    right_identity as right_identity,
    scan_agrees_with_fold as scan_agrees_with_fold,
    tolerance as tolerance,
)
