"""scanalg: associative scans as an algebra you can program with."""

from . import monoids as monoids
from ._monoid import AbstractMonoid as AbstractMonoid
