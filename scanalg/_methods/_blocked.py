"""`Blocked`: sequential inside blocks, a scan across blocks."""

import math
from typing import ClassVar

import equinox as eqx
import jax

from .. import _tree
from ._base import AbstractScanMethod, check_int, check_method
from ._sequential import Sequential
from ._three_pass import Stacked, ThreePass, cut, pad_after, total_in_parts


class Blocked(AbstractScanMethod):
    r"""Work-efficient blocked scan: sequential inside blocks, a scan across blocks.

    The sequence is cut into $B$ blocks of length $L$. Three passes: each block is
    reduced sequentially (all blocks at once under `vmap`); the $B$ block products
    are scanned by `outer` (exclusively); then each block is scanned sequentially
    from its block's prefix (again under `vmap`), with `act_input` when an initial
    state is given. Work $\approx 2T$ combines (or $T$ combines and $T$ acts), depth
    $2L + B$. `Sharded` runs the same passes with the blocks on different devices.

    When $L$ does not divide $T$, the last block in scan order is padded with copies
    of the last input, and the padded steps are dropped; a reduction takes the inputs
    left over after the last whole block in a loop of its own.

    **Arguments:**

    - `block_size`: $L$, an `int` $\ge 1$; the default (`None`) is
      $\lceil\sqrt{T}\rceil$.
    - `outer`: the method that scans the block products (default `Sequential()`).
    - `unroll`: unrolling of the in-block loops (an `int` $\ge 1$).
    """

    combines_with_init: ClassVar[bool] = True
    scans_from_start: ClassVar[bool] = True

    block_size: int | None = eqx.field(default=None, static=True)
    outer: AbstractScanMethod = eqx.field(default=Sequential(), static=True)
    unroll: int = eqx.field(default=1, static=True)

    def __check_init__(self):
        check_int("Blocked", "block_size", self.block_size, 1, optional=True)
        check_method("Blocked", "outer", self.outer, single_device=True)
        check_int("Blocked", "unroll", self.unroll, 1)

    def _passes(self) -> ThreePass:
        inner = Sequential(unroll=self.unroll)
        return ThreePass(Stacked(), local=inner, local_reduce=inner, outer=self.outer)

    def _size(self, n: int) -> int:
        return min(self.block_size or math.isqrt(n - 1) + 1, n)

    def _blocks(self, elems, reverse):
        """The inputs, padded (see `pad_after`) and cut into blocks."""
        n = jax.tree.leaves(elems)[0].shape[0]
        size = self._size(n)
        num = -(-n // size)
        pad = num * size - n
        return _tree.reshape_blocks(pad_after(elems, pad, reverse), num, size), n, pad

    def _unblock(self, out, n, pad, reverse):
        return cut(_tree.merge_blocks(out), n, pad, reverse)

    def prefix(self, monoid, elems, reverse):
        blocks, n, pad = self._blocks(elems, reverse)
        return self._unblock(self._passes().prefix(monoid, blocks, reverse), n, pad, reverse)

    def prefix_from(self, monoid, elems, start, reverse):
        blocks, n, pad = self._blocks(elems, reverse)
        out = self._passes().prefix(monoid, blocks, reverse, start)
        return self._unblock(out, n, pad, reverse)

    def prefix_act(self, monoid, elems, init, reverse):
        return self.states(monoid, elems, init, reverse)

    def states(self, monoid, elems, init, reverse, exclusive=False, readout=None):
        blocks, n, pad = self._blocks(elems, reverse)
        out = self._passes().states(monoid, blocks, init, reverse, exclusive, readout)
        return self._unblock(out, n, pad, reverse)

    def total(self, monoid, elems):
        n = jax.tree.leaves(elems)[0].shape[0]
        size = self._size(n)
        passes = self._passes()

        def head(elems):
            num = jax.tree.leaves(elems)[0].shape[0] // size
            return passes.total(monoid, _tree.reshape_blocks(elems, num, size))

        return total_in_parts(monoid, elems, size, head, passes.local_reduce)
