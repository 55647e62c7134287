"""`Auto`: chooses a method from the backend, the length and the cost of a step."""

import math
from typing import ClassVar

import equinox as eqx
import jax

from .. import _tree
from ._base import (
    AbstractScanMethod,
    element_like,
)
from ._blocked import Blocked
from ._parallel import Parallel
from ._sequential import Sequential


class Auto(AbstractScanMethod):
    r"""Chooses a method from the backend, the sequence length and the cost of a step.

    The rule (a cost model fitted to `python -m scanalg.bench` runs, see the
    Benchmarks page). It counts the primitive operations of one `combine` and of one
    `act_input` (from their jaxprs) and the number of scalars in one element, all at
    trace time:

    - **CPU, with an initial state.** `Blocked()` when $T \ge$ `min_blocked_length`,
      `act_input` has at least `min_blocked_act_ops` operations and an element at most
      `max_blocked_act_size` scalars; otherwise `Sequential()`. A loop step costs a
      fixed overhead per operation; `Blocked` pays it once per step for all blocks
      at once (under `vmap`), at the price of also forming block products. That wins
      when steps are many small operations: a Kalman step with state dimension 2
      (136 operations, 17 scalars) runs 4.2× faster blocked at $T = 10^5$. It loses
      when the element is large or the step is short: the HMM filter step (22
      operations), or state dimension 8 (209 scalars, $O(n^3)$ products).
    - **CPU, without an initial state** (and reductions): `Blocked()` when $T \ge$
      `min_blocked_length` and `combine` has at least `min_blocked_ops` operations,
      otherwise `Sequential()`. Measured on 2 cores at $T = 10^5$, HMM products (32
      operations): blocked 42 ms vs sequential 188 ms; a $3\times 3$ matrix
      product (1 operation): sequential 1.9 ms vs blocked 21 ms.
    - **Accelerators.** `Sequential()` for $T <$ `min_parallel_length`, `Parallel()`
      from there on. Measured on an H100: a sequential step costs 7–8 µs (HMM filter
      and sampler, $K = 5$), a doubling round about 50 µs, so `Parallel` is faster
      from $T = 16$ on (0.37 vs 0.55 ms) and 17× faster at $T = 1024$.

    Recalibrate for your machine by running `python -m scanalg.bench` and passing
    the crossovers it reports.

    **Arguments:**

    - `min_parallel_length`: the crossover length on accelerators.
    - `min_blocked_length`: the shortest scan that `Blocked` may take on CPU.
    - `min_blocked_ops`: without an initial state, the fewest `combine` operations
      for `Blocked`.
    - `min_blocked_act_ops`, `max_blocked_act_size`: with an initial state, the
      fewest `act_input` operations and the largest element for `Blocked`.
    """

    combines_with_init: ClassVar[bool] = True

    min_parallel_length: int = eqx.field(default=16, static=True)
    min_blocked_length: int = eqx.field(default=1024, static=True)
    min_blocked_ops: int = eqx.field(default=8, static=True)
    min_blocked_act_ops: int = eqx.field(default=64, static=True)
    max_blocked_act_size: int = eqx.field(default=64, static=True)

    def resolve(self, monoid, elems, init):
        n = jax.tree.leaves(elems)[0].shape[0]
        if jax.default_backend() != "cpu":
            return Sequential() if n < self.min_parallel_length else Parallel()
        if n < self.min_blocked_length:
            return Sequential()
        like = element_like(monoid, elems)
        if init is None:
            ops = len(jax.make_jaxpr(monoid.combine)(like, like).eqns)
            return Blocked() if ops >= self.min_blocked_ops else Sequential()
        size = sum(math.prod(x.shape) for x in jax.tree.leaves(like))
        if size > self.max_blocked_act_size:
            return Sequential()
        ops = len(jax.make_jaxpr(monoid.act_input)(init, _tree.like_element(elems)).eqns)
        return Blocked() if ops >= self.min_blocked_act_ops else Sequential()

    def prefix(self, monoid, elems, reverse):
        return self.resolve(monoid, elems, None).prefix(monoid, elems, reverse)

    def prefix_act(self, monoid, elems, init, reverse):
        return self.resolve(monoid, elems, init).prefix_act(monoid, elems, init, reverse)

    def states(self, monoid, elems, init, reverse, exclusive=False, readout=None):
        method = self.resolve(monoid, elems, init)
        return method.states(monoid, elems, init, reverse, exclusive, readout)

    def total(self, monoid, elems):
        return self.resolve(monoid, elems, None).total(monoid, elems)
