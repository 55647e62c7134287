"""`Sequential`: a `lax.scan` over time."""

from typing import ClassVar

import equinox as eqx

from ._base import (
    AbstractScanMethod,
    act_step,
    combine_step,
    element_like,
    emitter,
    loop,
)


class Sequential(AbstractScanMethod):
    r"""A `jax.lax.scan` over time: $T$ steps of depth one.

    With an initial state it calls only `act` per step, so a scan carrying a
    $K$-vector through $K\times K$ elements costs $O(K^2)$ per step.

    **Arguments:**

    - `unroll`: how many steps `lax.scan` unrolls per iteration.
    """

    combines_with_init: ClassVar[bool] = False

    unroll: int = eqx.field(default=1, static=True)

    def __check_init__(self):
        if not (isinstance(self.unroll, int) and self.unroll >= 1):
            raise ValueError(f"Sequential(unroll=...) must be an int >= 1, got {self.unroll!r}.")

    def prefix(self, monoid, elems, reverse):
        carry = monoid.identity(element_like(monoid, elems))
        step = combine_step(monoid, reverse)
        return loop(step, carry, elems, reverse=reverse, unroll=self.unroll)[1]

    def prefix_act(self, monoid, elems, init, reverse):
        step = act_step(monoid)
        return loop(step, init, elems, reverse=reverse, unroll=self.unroll)[1]

    def states(self, monoid, elems, init, reverse, exclusive=False, readout=None):
        emit = emitter(exclusive, readout)
        step = act_step(monoid)
        return loop(step, init, elems, reverse=reverse, unroll=self.unroll, emit=emit)[1]

    def total(self, monoid, elems):
        carry = monoid.identity(element_like(monoid, elems))
        step = combine_step(monoid, False)
        return loop(step, carry, elems, reverse=False, unroll=self.unroll, keep=False)[0]
