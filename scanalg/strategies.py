"""Hypothesis strategies for the built-in monoids (an alias of `scanalg.testing.strategies`).

This module needs Hypothesis (in the `test` extra); `import scanalg` does not import it.
"""

from .testing.strategies import *  # noqa: F403
from .testing.strategies import __all__ as __all__  # noqa: F401
