"""scanalg: associative scans as an algebra you can program with."""

from . import monoids as monoids
from ._methods import (
    AbstractScanMethod as AbstractScanMethod,
    Auto as Auto,
    Blocked as Blocked,
    Parallel as Parallel,
    Sequential as Sequential,
)
from ._monoid import AbstractMonoid as AbstractMonoid
from ._scan import reduce as reduce, scan as scan
from ._sharded import Sharded as Sharded

# isort: split
from . import laws as laws
from ._laws import (
    Law as Law,
    LawViolation as LawViolation,
    action_compatibility as action_compatibility,
    action_identity as action_identity,
    associativity as associativity,
    check_laws as check_laws,
    left_identity as left_identity,
    right_identity as right_identity,
    scan_agrees_with_fold as scan_agrees_with_fold,
)
