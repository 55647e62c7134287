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
