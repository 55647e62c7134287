"""`Blocked`: sequential inside blocks, a scan across blocks."""

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _tree
from ._base import (
    AbstractScanMethod,
    act_step,
    combine_step,
    element_like,
    emitter,
    loop,
    on_elements,
    shift,
)
from ._sequential import Sequential


class Blocked(AbstractScanMethod):
    r"""Work-efficient blocked scan: sequential inside blocks, a scan across blocks.

    The sequence is cut into $B$ blocks of length $L$ (the last padded with the
    identity). Three passes: each block is reduced sequentially (all blocks at once
    under `vmap`); the $B$ block totals are scanned by `outer` (exclusively); then
    each block is scanned sequentially from its block's prefix (again under
    `vmap`), with `act` when an initial state is given. Work $\approx 2T$ combines
    (or $T$ combines and $T$ acts), depth $2L + B$.

    **Arguments:**

    - `block_size`: $L$; the default is $\lceil\sqrt{T}\rceil$.
    - `outer`: the method that scans the block totals (default `Sequential()`).
    - `unroll`: unrolling of the in-block loops.
    """

    combines_with_init: ClassVar[bool] = True

    block_size: int | None = eqx.field(default=None, static=True)
    outer: AbstractScanMethod = eqx.field(default=Sequential(), static=True)
    unroll: int = eqx.field(default=1, static=True)

    def __check_init__(self):
        if self.block_size is not None and not (
            isinstance(self.block_size, int) and self.block_size >= 1
        ):
            raise ValueError(
                f"Blocked(block_size=...) must be None or an int >= 1, got {self.block_size!r}."
            )
        if not isinstance(self.outer, AbstractScanMethod):
            raise TypeError(f"Blocked(outer=...) must be a scan method, got {self.outer!r}.")

    def _blocks(self, elems):
        """Cut the inputs into blocks; pad by repeating the last input, masked out."""
        n = jax.tree.leaves(elems)[0].shape[0]
        size = min(self.block_size or math.isqrt(n - 1) + 1, n)
        num = -(-n // size)
        pad = num * size - n
        valid = None
        if pad:
            elems = _tree.concat(elems, _tree.repeat(_tree.index(elems, n - 1), pad))
            valid = (jnp.arange(num * size) < n).reshape(num, size)
        return _tree.reshape_blocks(elems, num, size), valid, n

    def _in_blocks(self, step, starts, blocks, valid, reverse, keep=True, emit=None):
        def run(start, block, ok):
            return loop(
                step,
                start,
                block,
                reverse=reverse,
                unroll=self.unroll,
                keep=keep,
                valid=ok,
                emit=emit,
            )

        final, out = jax.vmap(run)(starts, blocks, valid)
        return final if not keep else out

    def _block_totals(self, monoid, blocks, valid):
        ident = monoid.identity(element_like(monoid, _tree.index(blocks, 0)))
        starts = _tree.repeat(ident, jax.tree.leaves(blocks)[0].shape[0])
        step = combine_step(monoid, False)
        return self._in_blocks(step, starts, blocks, valid, False, keep=False)

    def prefix(self, monoid, elems, reverse):
        blocks, valid, n = self._blocks(elems)
        totals = self._block_totals(monoid, blocks, valid)
        inner = on_elements(monoid)
        inclusive = self.outer.resolve(inner, totals, None).prefix(inner, totals, reverse)
        starts = shift(inclusive, monoid.identity(_tree.index(totals, 0)), reverse)
        out = self._in_blocks(combine_step(monoid, reverse), starts, blocks, valid, reverse)
        return _tree.time_slice(_tree.merge_blocks(out), 0, n)

    def prefix_act(self, monoid, elems, init, reverse):
        return self.states(monoid, elems, init, reverse)

    def states(self, monoid, elems, init, reverse, exclusive=False, readout=None):
        blocks, valid, n = self._blocks(elems)
        totals = self._block_totals(monoid, blocks, valid)
        inner = on_elements(monoid)
        outer = self.outer.resolve(inner, totals, init)
        starts = shift(outer.prefix_act(inner, totals, init, reverse), init, reverse)
        emit = emitter(exclusive, readout)
        out = self._in_blocks(act_step(monoid), starts, blocks, valid, reverse, emit=emit)
        return _tree.time_slice(_tree.merge_blocks(out), 0, n)

    def total(self, monoid, elems):
        blocks, valid, _ = self._blocks(elems)
        totals = self._block_totals(monoid, blocks, valid)
        inner = on_elements(monoid)
        return self.outer.resolve(inner, totals, None).total(inner, totals)
