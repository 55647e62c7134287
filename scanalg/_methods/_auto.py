"""`Auto`: chooses a method from the backend, the length and the cost of a step."""

from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
from jax.extend import core as jex_core

from .. import _tree
from ._base import AbstractScanMethod, check_int, element_like
from ._blocked import Blocked
from ._parallel import Parallel
from ._sequential import Sequential

# Primitives that XLA:CPU fuses with their neighbours into one loop kernel: elementwise
# arithmetic and comparisons, changes of shape and layout, and reductions. The others
# (gathers, dynamic slices, dot products, argmax, sorts, ...) each run as a kernel of
# their own, with a fixed cost per call, in every step of a loop.
_FUSIBLE = frozenset(
    """abs acos add and asin atan atan2 broadcast_in_dim cbrt ceil clamp concatenate
    convert_element_type copy copy_p cos cosh div eq erf erf_inv erfc exp exp2
    expand_dims expm1 floor ge gt integer_pow iota is_finite le lgamma log log1p logistic
    lt max min mul ne neg nextafter not or pad pow reduce_and reduce_max reduce_min
    reduce_or reduce_precision reduce_prod reduce_sum rem reshape rev round rsqrt
    select_n sign sin sinh slice sqrt square squeeze stack stop_gradient sub tan tanh
    transpose xor""".split()
)


def _count_eqns(jaxpr: jex_core.Jaxpr, fusible: bool = True) -> int:
    """The primitive operations of `jaxpr`, counted into the jaxprs its operations
    call (`jit`, custom derivatives, `checkpoint`, loop bodies: once each; `cond`: its
    largest branch). A call itself is not an operation. With `fusible=False`, only
    the operations that XLA:CPU does not fuse (not in `_FUSIBLE`)."""
    total = 0
    for eqn in jaxpr.eqns:
        inner = []
        for value in eqn.params.values():
            values = value if isinstance(value, tuple | list) else (value,)
            for v in values:
                if isinstance(v, jex_core.ClosedJaxpr):
                    inner.append(_count_eqns(v.jaxpr, fusible))
                elif isinstance(v, jex_core.Jaxpr):
                    inner.append(_count_eqns(v, fusible))
        if not inner:
            total += fusible or eqn.primitive.name not in _FUSIBLE
        elif eqn.primitive.name == "cond":
            total += max(inner)
        else:
            total += sum(inner)
    return total


def count_ops(fn: Callable, *args, fusible: bool = True) -> int:
    """The number of primitive operations `fn(*args)` traces to (see `_count_eqns`);
    with `fusible=False`, of those that run as kernels of their own on CPU."""
    return _count_eqns(jax.make_jaxpr(fn)(*args).jaxpr, fusible)


class Auto(AbstractScanMethod):
    r"""Chooses a method from the backend, the sequence length and the cost of a step.

    It counts the primitive operations of one `combine` and of one `act_input` (from
    their jaxprs, counting into the functions they call, so wrapping `combine` in
    `jax.jit` changes nothing) and the number of scalars in one element, all at
    trace time, and picks:

    - **CPU, with an initial state:** `Blocked()` when $T \ge$ `min_blocked_length`,
      `act_input` has at least `min_blocked_act_ops` operations, of which at least
      `min_blocked_act_kernels` are ones XLA:CPU does not fuse (gathers, dot
      products, argmax, sorts: not elementwise, reshaping or reducing), and an
      element has at most `max_blocked_act_size` scalars; otherwise `Sequential()`.
      A loop step pays a fixed overhead per kernel; `Blocked` pays it once per step
      for all blocks at once (under `vmap`), at the price of also forming block
      products. That wins when steps are many small kernels on small elements, and
      loses when the element is large, or the step is short or fuses into a few
      kernels.
    - **CPU, without an initial state** (and reductions): `Blocked()` when $T \ge$
      `min_blocked_length` and `combine` has at least `min_blocked_ops` operations,
      otherwise `Sequential()`.
    - **Accelerators:** `Sequential()` for $T <$ `min_parallel_length`, `Parallel()`
      from there on.

    The defaults come from `python -m scanalg.bench` runs (see the Benchmarks page);
    recalibrate for your machine by running it and passing the crossovers it reports.

    **Arguments** (each an `int` $\ge 0$):

    - `min_parallel_length`: the crossover length on accelerators.
    - `min_blocked_length`: the shortest scan that `Blocked` may take on CPU.
    - `min_blocked_ops`: without an initial state, the fewest `combine` operations
      for `Blocked`.
    - `min_blocked_act_ops`, `min_blocked_act_kernels`, `max_blocked_act_size`: with
      an initial state, the fewest `act_input` operations, the fewest of them that
      do not fuse, and the largest element for `Blocked`.
    """

    combines_with_init: ClassVar[bool] = True

    min_parallel_length: int = eqx.field(default=16, static=True)
    min_blocked_length: int = eqx.field(default=1024, static=True)
    min_blocked_ops: int = eqx.field(default=8, static=True)
    min_blocked_act_ops: int = eqx.field(default=64, static=True)
    min_blocked_act_kernels: int = eqx.field(default=4, static=True)
    max_blocked_act_size: int = eqx.field(default=36, static=True)

    def __check_init__(self):
        for field in (
            "min_parallel_length",
            "min_blocked_length",
            "min_blocked_ops",
            "min_blocked_act_ops",
            "min_blocked_act_kernels",
            "max_blocked_act_size",
        ):
            check_int("Auto", field, getattr(self, field), 0)

    def resolve(self, monoid, elems, init):
        n = jax.tree.leaves(elems)[0].shape[0]
        if jax.default_backend() != "cpu":
            return Sequential() if n < self.min_parallel_length else Parallel()
        if n < self.min_blocked_length:
            return Sequential()
        like = element_like(monoid, elems)
        if init is None:
            ops = count_ops(monoid.combine, like, like)
            return Blocked() if ops >= self.min_blocked_ops else Sequential()
        if _tree.size(like) > self.max_blocked_act_size:
            return Sequential()
        act = jax.make_jaxpr(monoid.act_input)(init, _tree.like_element(elems)).jaxpr
        blocked = _count_eqns(act) >= self.min_blocked_act_ops and (
            _count_eqns(act, fusible=False) >= self.min_blocked_act_kernels
        )
        return Blocked() if blocked else Sequential()

    def prefix(self, monoid, elems, reverse):
        return self.resolve(monoid, elems, None).prefix(monoid, elems, reverse)

    def prefix_from(self, monoid, elems, start, reverse):
        return self.resolve(monoid, elems, None).prefix_from(monoid, elems, start, reverse)

    def prefix_act(self, monoid, elems, init, reverse):
        return self.resolve(monoid, elems, init).prefix_act(monoid, elems, init, reverse)

    def states(self, monoid, elems, init, reverse, exclusive=False, readout=None):
        method = self.resolve(monoid, elems, init)
        return method.states(monoid, elems, init, reverse, exclusive, readout)

    def total(self, monoid, elems):
        return self.resolve(monoid, elems, None).total(monoid, elems)
