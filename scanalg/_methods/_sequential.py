"""`Sequential`: a `lax.scan` over time."""

from typing import ClassVar

import equinox as eqx

from ._base import (
    AbstractScanMethod,
    act_step,
    check_int,
    combine_step,
    element_like,
    emitter,
    loop,
)


class Sequential(AbstractScanMethod):
    r"""A `jax.lax.scan` over time: $T$ steps of depth one.

    With an initial state it calls only `act_input` per step, so a scan carrying a
    $K$-vector through $K\times K$ elements costs $O(K^2)$ per step.

    **Arguments:**

    - `unroll`: how many steps `lax.scan` unrolls per iteration (an `int` $\ge 1$).
    """

    combines_with_init: ClassVar[bool] = False
    scans_from_start: ClassVar[bool] = True

    unroll: int = eqx.field(default=1, static=True)

    def __check_init__(self):
        check_int("Sequential", "unroll", self.unroll, 1)

    def prefix(self, monoid, elems, reverse):
        start = monoid.identity(element_like(monoid, elems))
        return self.prefix_from(monoid, elems, start, reverse)

    def prefix_from(self, monoid, elems, start, reverse):
        step = combine_step(monoid, reverse)
        return loop(step, start, elems, reverse=reverse, unroll=self.unroll)[1]

    def prefix_act(self, monoid, elems, init, reverse):
        return self.states(monoid, elems, init, reverse)

    def states(self, monoid, elems, init, reverse, exclusive=False, readout=None):
        emit = emitter(exclusive, readout)
        step = act_step(monoid)
        return loop(step, init, elems, reverse=reverse, unroll=self.unroll, emit=emit)[1]

    def total(self, monoid, elems):
        carry = monoid.identity(element_like(monoid, elems))
        step = combine_step(monoid, False)
        return loop(step, carry, elems, reverse=False, unroll=self.unroll, keep=False)[0]
