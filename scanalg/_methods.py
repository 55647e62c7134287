"""Scan methods: how a scan is executed. Every method gives the same answer."""

import abc
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp

from . import _tree
from ._monoid import AbstractMonoid

PyTree = Any


def _combine_step(monoid: AbstractMonoid, reverse: bool) -> Callable:
    # The carry holds the product of the elements already visited; in a reverse
    # scan those are *later* in time, so the new element goes on the left.
    if reverse:
        return lambda carry, x: monoid.combine(x, carry)
    return monoid.combine


def _loop(
    step: Callable,
    carry: PyTree,
    xs: PyTree,
    *,
    reverse: bool,
    unroll: int,
    keep: bool = True,
    exclusive: bool = False,
) -> tuple[PyTree, PyTree]:
    """A `lax.scan` of `step(carry, x) -> carry`, returning the final and all carries."""

    def body(c, x):
        new = step(c, x)
        if not keep:
            return new, None
        return new, (c if exclusive else new)

    return lax.scan(body, carry, xs, reverse=reverse, unroll=unroll)


class AbstractScanMethod(eqx.Module):
    """How a scan is executed: sequentially, in parallel, by blocks, ...

    Subclasses implement `prefix` and `total` for sequences of length at least one;
    `scan` and `reduce` handle empty sequences, exclusive scans and validation.
    """

    @abc.abstractmethod
    def prefix(self, monoid: AbstractMonoid, elems: PyTree, reverse: bool) -> PyTree:
        r"""Inclusive prefix products $x_1 \otimes\cdots\otimes x_t$ (suffix products
        $x_t \otimes\cdots\otimes x_T$ when `reverse`), stacked along time."""

    @abc.abstractmethod
    def total(self, monoid: AbstractMonoid, elems: PyTree) -> PyTree:
        r"""The product of all elements, $x_1 \otimes\cdots\otimes x_T$."""

    def prefix_act(
        self, monoid: AbstractMonoid, elems: PyTree, init: PyTree, reverse: bool
    ) -> PyTree:
        """The states `act(init, prefix_t)`, stacked along time.

        The default computes the prefix products and applies each to `init`.
        """
        prefixes = self.prefix(monoid, elems, reverse)
        return jax.vmap(monoid.act, in_axes=(None, 0))(init, prefixes)

    def resolve(
        self, monoid: AbstractMonoid, elems: PyTree, init: PyTree | None
    ) -> "AbstractScanMethod":
        """The concrete method to run (only `Auto` chooses; others return `self`)."""
        return self


class Sequential(AbstractScanMethod):
    r"""A `jax.lax.scan` over time: $T$ steps of depth one.

    With an initial state it calls only `act` per step, so a scan carrying a
    $K$-vector through $K\times K$ elements costs $O(K^2)$ per step.

    **Arguments:**

    - `unroll`: how many steps `lax.scan` unrolls per iteration.
    """

    unroll: int = 1

    def __check_init__(self):
        if not (isinstance(self.unroll, int) and self.unroll >= 1):
            raise ValueError(f"Sequential(unroll=...) must be an int >= 1, got {self.unroll!r}.")

    def prefix(self, monoid, elems, reverse):
        carry = monoid.identity(_tree.like_element(elems))
        step = _combine_step(monoid, reverse)
        return _loop(step, carry, elems, reverse=reverse, unroll=self.unroll)[1]

    def prefix_act(self, monoid, elems, init, reverse):
        return _loop(monoid.act, init, elems, reverse=reverse, unroll=self.unroll)[1]

    def total(self, monoid, elems):
        carry = monoid.identity(_tree.like_element(elems))
        step = _combine_step(monoid, False)
        return _loop(step, carry, elems, reverse=False, unroll=self.unroll, keep=False)[0]


class Parallel(AbstractScanMethod):
    r"""A parallel scan of depth $O(\log T)$.

    Two algorithms:

    - `"doubling"` (default; Hillis & Steele / Kogge & Stone): $\lceil\log_2 T\rceil$
      rounds of $y_t \leftarrow y_{t-2^d} \otimes y_t$, written as one loop over the
      rounds, so compile time does not grow with $T$. Work $O(T \log T)$ combines.
    - `"associative_scan"`: `jax.lax.associative_scan` (work-efficient, $O(T)$
      combines, but one unrolled level per power of two, so compile time grows with
      $\log T$ and is large for big elements).

    Either way the reverse scan calls `combine(earlier, later)` in time order (the
    argument swap that `jax.lax.associative_scan` makes for reverse scans is undone).
    The reduction is a balanced tree of depth $\lceil \log_2 T \rceil$, padding with
    the identity at odd levels.

    **Arguments:**

    - `algorithm`: `"doubling"` or `"associative_scan"`.
    """

    algorithm: str = "doubling"

    def __check_init__(self):
        if self.algorithm not in ("doubling", "associative_scan"):
            raise ValueError(
                "Parallel(algorithm=...) must be 'doubling' or 'associative_scan', "
                f"got {self.algorithm!r}."
            )

    def prefix(self, monoid, elems, reverse):
        batched = jax.vmap(monoid.combine)
        if self.algorithm == "associative_scan":
            if reverse:
                # associative_scan reverses the array and calls fn(later, earlier).
                fn = lambda a, b: batched(b, a)  # noqa: E731
            else:
                fn = batched
            return lax.associative_scan(fn, elems, reverse=reverse)
        n = jax.tree.leaves(elems)[0].shape[0]
        pad = _tree.repeat(monoid.identity(_tree.like_element(elems)), n)

        def round_(d, y):
            step = jnp.left_shift(1, d)
            if reverse:  # y_t <- y_t (x) y_{t + 2^d}, identity past the end
                later = jax.tree.map(
                    lambda a: lax.dynamic_slice_in_dim(a, step, n), _tree.concat(y, pad)
                )
                return batched(y, later)
            earlier = jax.tree.map(
                lambda a: lax.dynamic_slice_in_dim(a, n - step, n), _tree.concat(pad, y)
            )
            return batched(earlier, y)

        return lax.fori_loop(0, max(1, (n - 1).bit_length()), round_, elems)

    def total(self, monoid, elems):
        batched = jax.vmap(monoid.combine)
        n = jax.tree.leaves(elems)[0].shape[0]
        while n > 1:
            if n % 2:
                pad = _tree.stack_one(monoid.identity(_tree.like_element(elems)))
                elems = _tree.concat(elems, pad)
                n += 1
            evens = jax.tree.map(lambda x: x[0::2], elems)
            odds = jax.tree.map(lambda x: x[1::2], elems)
            elems = batched(evens, odds)
            n //= 2
        return _tree.index(elems, 0)


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

    block_size: int | None = None
    outer: AbstractScanMethod = Sequential()
    unroll: int = 1

    def __check_init__(self):
        if self.block_size is not None and not (
            isinstance(self.block_size, int) and self.block_size >= 1
        ):
            raise ValueError(
                f"Blocked(block_size=...) must be None or an int >= 1, got {self.block_size!r}."
            )
        if not isinstance(self.outer, AbstractScanMethod):
            raise TypeError(f"Blocked(outer=...) must be a scan method, got {self.outer!r}.")

    def _blocks(self, monoid, elems):
        n = jax.tree.leaves(elems)[0].shape[0]
        size = self.block_size or max(1, math.isqrt(n - 1) + 1)
        size = min(size, n)
        num = -(-n // size)
        pad = num * size - n
        if pad:
            ident = monoid.identity(_tree.like_element(elems))
            elems = _tree.concat(elems, _tree.repeat(ident, pad))
        return _tree.reshape_blocks(elems, num, size), n

    def _block_totals(self, monoid, blocks):
        seq = Sequential(self.unroll)
        return jax.vmap(lambda b: seq.total(monoid, b))(blocks)

    def prefix(self, monoid, elems, reverse):
        blocks, n = self._blocks(monoid, elems)
        totals = self._block_totals(monoid, blocks)
        inclusive = self.outer.resolve(monoid, totals, None).prefix(monoid, totals, reverse)
        ident = monoid.identity(_tree.like_element(elems))
        starts = shift(inclusive, ident, reverse)
        step = _combine_step(monoid, reverse)

        def finish(start, block):
            return _loop(step, start, block, reverse=reverse, unroll=self.unroll)[1]

        out = jax.vmap(finish)(starts, blocks)
        return _tree.time_slice(_tree.merge_blocks(out), 0, n)

    def prefix_act(self, monoid, elems, init, reverse):
        blocks, n = self._blocks(monoid, elems)
        totals = self._block_totals(monoid, blocks)
        outer = self.outer.resolve(monoid, totals, init)
        starts = shift(outer.prefix_act(monoid, totals, init, reverse), init, reverse)

        def finish(start, block):
            return _loop(monoid.act, start, block, reverse=reverse, unroll=self.unroll)[1]

        out = jax.vmap(finish)(starts, blocks)
        return _tree.time_slice(_tree.merge_blocks(out), 0, n)

    def total(self, monoid, elems):
        blocks, _ = self._blocks(monoid, elems)
        totals = self._block_totals(monoid, blocks)
        return self.outer.resolve(monoid, totals, None).total(monoid, totals)


class Auto(AbstractScanMethod):
    r"""Chooses a method from the backend and the sequence length.

    The rule: on CPU, `Sequential()` (a CPU has too few cores for the extra work of a
    parallel scan to pay off); on an accelerator, `Sequential()` for
    $T <$ `min_parallel_length` and `Parallel()` above.

    **Arguments:**

    - `min_parallel_length`: the crossover length on accelerators.
    """

    min_parallel_length: int = 512

    def resolve(self, monoid, elems, init):
        n = jax.tree.leaves(elems)[0].shape[0]
        if jax.default_backend() == "cpu" or n < self.min_parallel_length:
            return Sequential()
        return Parallel()

    def prefix(self, monoid, elems, reverse):
        return self.resolve(monoid, elems, None).prefix(monoid, elems, reverse)

    def prefix_act(self, monoid, elems, init, reverse):
        return self.resolve(monoid, elems, init).prefix_act(monoid, elems, init, reverse)

    def total(self, monoid, elems):
        return self.resolve(monoid, elems, None).total(monoid, elems)


def shift(inclusive: PyTree, first: PyTree, reverse: bool) -> PyTree:
    """Turn an inclusive scan into an exclusive one, starting from `first`.

    Written as a same-length `lax.pad` (not slice-and-concatenate) so that a sequence
    sharded along time keeps its sharding (see `Sharded`).
    """
    config = [(-1, 1, 0)] if reverse else [(1, -1, 0)]

    def one(x, f):
        n = x.shape[0]
        moved = lax.pad(x, jnp.zeros((), x.dtype), config + [(0, 0, 0)] * (x.ndim - 1))
        at = lax.broadcasted_iota(jnp.int32, (n,) + (1,) * (x.ndim - 1), 0)
        return jnp.where(at == (n - 1 if reverse else 0), f, moved)

    return jax.tree.map(one, inclusive, first)


METHODS: dict[str, type[AbstractScanMethod]] = {
    "sequential": Sequential,
    "parallel": Parallel,
    "blocked": Blocked,
    "auto": Auto,
}


def as_method(method: "str | AbstractScanMethod") -> AbstractScanMethod:
    """Turn a method name into a method instance, or check a given instance."""
    if isinstance(method, AbstractScanMethod):
        return method
    if isinstance(method, str):
        try:
            return METHODS[method.lower()]()
        except KeyError:
            pass
        valid = ", ".join(repr(k) for k in METHODS)
        raise ValueError(f"Unknown scan method {method!r}; valid names are {valid}.")
    raise TypeError(
        f"`method` must be a method name or an AbstractScanMethod instance, got {method!r}."
    )
