"""Testing tools: Hypothesis strategies for the built-in monoids (`scanalg.testing.strategies`).

Importing `scanalg.testing` needs Hypothesis (in the `test` extra).
"""

from . import strategies as strategies
