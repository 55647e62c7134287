"""The conformance battery `scanalg.testing.check_method`: every built-in method passes
it, and a method with `jax.lax.associative_scan`'s reverse-argument swap fails it, by
name. (`Sharded` is checked in test_sharded.py.)"""

from typing import ClassVar

import jax
import jax.lax as lax
import pytest

import scanalg
from scanalg.testing import MethodConformanceError, check_method

builtin_methods = (
    scanalg.Sequential(),
    scanalg.Parallel(),
    scanalg.Parallel(algorithm="associative_scan"),
    scanalg.Blocked(block_size=3),  # (`Blocked()` differs only in its block size)
    scanalg.Auto(),
)


@pytest.mark.parametrize("method", builtin_methods, ids=repr)
def test_builtin_methods_conform(method):
    check_method(method)


class SwappedReverse(scanalg.AbstractScanMethod):
    """Parallel-like, with the argument swap of `jax.lax.associative_scan` left in: its
    reverse scans call `combine(later, earlier)`."""

    combines_with_init: ClassVar[bool] = True

    def prefix(self, monoid, elems, reverse):
        elems = jax.vmap(monoid.lift)(elems)
        return lax.associative_scan(jax.vmap(monoid.combine), elems, reverse=reverse)

    def total(self, monoid, elems):
        return jax.tree.map(lambda x: x[-1], self.prefix(monoid, elems, False))


class Raises(SwappedReverse):
    """A method that fails outright (at trace time: the battery compiles nothing)."""

    def prefix(self, monoid, elems, reverse):
        raise NotImplementedError("not written yet")


def _error(method) -> MethodConformanceError:
    with pytest.raises(MethodConformanceError) as info:
        check_method(method)
    return info.value


def test_catches_the_reverse_argument_swap():
    err = _error(SwappedReverse())
    message = str(err)
    assert isinstance(err, AssertionError) and err.method == SwappedReverse()
    # The method is the subject of the report, and the failing cases are named.
    assert message.startswith("The scan method SwappedReverse() fails ")
    labels = [label for label, _ in err.failures]
    assert all("reverse" in label for label in labels)
    assert "reverse inclusive scan, length 7, of Masked(MatMul()), under jit" in labels
    assert "reverse inclusive scan, length 17, of FiniteFunction(), under jit" in labels
    assert any("under vmap and grad" in label for label in labels)
    # Lengths 0 and 1 have nothing to swap.
    assert not any("length 0," in label or "length 1," in label for label in labels)
    assert "entries differ" in message and "combine(earlier, later) in time order" in message


def test_a_method_that_raises_fails_with_its_error():
    err = _error(Raises())
    assert str(err).startswith("The scan method Raises() fails ")
    assert all(why == "raised NotImplementedError: not written yet" for _, why in err.failures)
    # Each variant that raises is named (they are run one by one to find out).
    labels = [label for label, _ in err.failures]
    assert "reverse inclusive scan, length 7, of Masked(MatMul()), under jit" in labels
    assert "length 7, of Masked(MatMul()), under vmap" in labels


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown scan method"):
        check_method("loop")
    with pytest.raises(TypeError, match="floating dtype"):
        check_method(scanalg.Sequential(), dtype="int32")
