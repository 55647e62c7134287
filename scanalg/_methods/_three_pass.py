r"""The blocked scan that `Blocked` and `Sharded` share.

A sequence cut into $B$ blocks is scanned in three passes:

1. each block is reduced to its product $c_b$;
2. the $B$ products are scanned exclusively, giving the product $p_b$ of everything
   before block $b$ in scan order (or, with an initial state $s$, the state
   $s \cdot p_b$ entering it);
3. each block is scanned from $p_b$ (or from $s \cdot p_b$ with `act`).

When the method that scans a block cannot start from a given element at no extra
cost (`scans_from_start` is false, e.g. `Parallel`), passes 1 and 3 become "scan the
block, read its product off the last prefix" and "combine $p_b$ into every prefix".

The passes are written once; a *layout* says where the blocks live:
`Stacked` (along a leading axis, all blocks side by side under `vmap`) or
`OnDevices` (one block per device along a mesh axis, inside `jax.shard_map`).
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.lax as lax

from .. import _tree
from .._monoid import AbstractMonoid
from ._base import AbstractScanMethod, combine_start, on_elements, shift

PyTree = Any


class Stacked:
    """Blocks stacked along a leading axis, processed side by side under `vmap`."""

    def each(self, fn: Callable, *blocks: PyTree) -> PyTree:
        return jax.vmap(fn)(*blocks)

    def gather(self, per_block: PyTree) -> PyTree:
        return per_block

    def mine(self, every: PyTree) -> PyTree:
        return every


@dataclasses.dataclass(frozen=True)
class OnDevices:
    """One block per device along the mesh axis `axis_name` (inside `shard_map`)."""

    axis_name: str

    def each(self, fn: Callable, *blocks: PyTree) -> PyTree:
        return fn(*blocks)

    def gather(self, per_block: PyTree) -> PyTree:
        return jax.tree.map(lambda x: lax.all_gather(x, self.axis_name), per_block)

    def mine(self, every: PyTree) -> PyTree:
        me = lax.axis_index(self.axis_name)
        return jax.tree.map(lambda x: x[me], every)


@dataclasses.dataclass(frozen=True)
class ThreePass:
    """The three passes over blocks laid out by `layout`.

    - `local`: scans one block (resolved per block).
    - `local_reduce`: reduces one block.
    - `outer`: scans the $B$ block products.
    """

    layout: Stacked | OnDevices
    local: AbstractScanMethod
    local_reduce: AbstractScanMethod
    outer: AbstractScanMethod

    def _reduce(self, monoid: AbstractMonoid, block: PyTree) -> PyTree:
        return self.local_reduce.resolve(monoid, block, None).total(monoid, block)

    def prefix(
        self, monoid: AbstractMonoid, blocks: PyTree, reverse: bool, start: PyTree = None
    ) -> PyTree:
        """Inclusive prefixes of every block (from `start`, if given)."""
        first = functools.partial(self._first_prefix, monoid, reverse)
        totals, inclusive = self.layout.each(first, blocks)
        totals = self.layout.gather(totals)
        inner = on_elements(monoid)
        outer = self.outer.resolve(inner, totals, None)
        if start is None:
            start = monoid.identity(_tree.index(totals, 0))
            before = outer.prefix(inner, totals, reverse)
        else:
            before = outer.prefix_from(inner, totals, start, reverse)
        starts = self.layout.mine(shift(before, start, reverse))
        third = functools.partial(self._third_prefix, monoid, reverse)
        return self.layout.each(third, starts, blocks, inclusive)

    # (Module-level work of `prefix` and `states`, bound with `functools.partial`
    # rather than written as closures: see `_base.emitter`.)

    def _first_prefix(self, monoid, reverse, block):
        local = self.local.resolve(monoid, block, None)
        if local.scans_from_start:
            return self._reduce(monoid, block), None
        inclusive = local.prefix(monoid, block, reverse)
        return _tree.index(inclusive, 0 if reverse else -1), inclusive

    def _third_prefix(self, monoid, reverse, start, block, inclusive):
        if inclusive is None:
            local = self.local.resolve(monoid, block, None)
            return local.prefix_from(monoid, block, start, reverse)
        return combine_start(monoid, start, inclusive, reverse)

    def _third_states(self, monoid, reverse, exclusive, readout, state, block):
        local = self.local.resolve(monoid, block, state)
        return local.states(monoid, block, state, reverse, exclusive, readout)

    def states(
        self,
        monoid: AbstractMonoid,
        blocks: PyTree,
        init: PyTree,
        reverse: bool,
        exclusive: bool,
        readout: Callable | None,
    ) -> PyTree:
        """The states (or their readouts) of every block, from `init`."""
        totals = self.layout.gather(self.layout.each(lambda b: self._reduce(monoid, b), blocks))
        inner = on_elements(monoid)
        outer = self.outer.resolve(inner, totals, init)
        entering = shift(outer.prefix_act(inner, totals, init, reverse), init, reverse)
        third = functools.partial(self._third_states, monoid, reverse, exclusive, readout)
        return self.layout.each(third, self.layout.mine(entering), blocks)

    def total(self, monoid: AbstractMonoid, blocks: PyTree) -> PyTree:
        """The product of all blocks."""
        totals = self.layout.gather(self.layout.each(lambda b: self._reduce(monoid, b), blocks))
        inner = on_elements(monoid)
        return self.outer.resolve(inner, totals, None).total(inner, totals)


def pad_after(elems: PyTree, pad: int, reverse: bool) -> PyTree:
    """Append `pad` copies of the boundary input *after* the data in scan order (at the
    end forward, at the front in reverse). A scan never carries a padded step into a
    real output, so the padding need not be the identity (inputs are `lift`ed, so
    there may be no input that lifts to it); `cut` removes it again."""
    if not pad:
        return elems
    n = jax.tree.leaves(elems)[0].shape[0]
    edge = _tree.repeat(_tree.index(elems, 0 if reverse else n - 1), pad)
    return _tree.concat(edge, elems) if reverse else _tree.concat(elems, edge)


def cut(out: PyTree, n: int, pad: int, reverse: bool) -> PyTree:
    """Undo `pad_after` on a scan's output."""
    if not pad:
        return out
    return _tree.time_slice(out, pad, pad + n) if reverse else _tree.time_slice(out, 0, n)


def total_in_parts(
    monoid: AbstractMonoid,
    elems: PyTree,
    multiple: int,
    head: Callable[[PyTree], PyTree],
    rest: AbstractScanMethod,
) -> PyTree:
    """The product of all inputs, when the blocked reduction `head` takes a multiple
    of `multiple` inputs only (padding would have to be the identity): `head` of the
    longest such prefix, times `rest`'s reduction of the few inputs left over."""
    n = jax.tree.leaves(elems)[0].shape[0]
    m = n - n % multiple
    if m == n:
        return head(elems)
    tail = _tree.time_slice(elems, m, n)
    tail = rest.resolve(monoid, tail, None).total(monoid, tail)
    if m == 0:
        return tail
    return monoid.combine(head(_tree.time_slice(elems, 0, m)), tail)
