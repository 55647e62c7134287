"""`Parallel`: associative scans of logarithmic depth."""

import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp

from .. import _tree
from .._monoid import AbstractMonoid
from ._base import (
    AbstractScanMethod,
    check_int,
    element_like,
    lift_all,
)
from ._blocked import Blocked

PyTree = Any

_ALGORITHMS = ("hybrid", "doubling", "associative_scan")
# The most levels `"hybrid"` unrolls across leaves: their products are 1/leaf_size as
# many as the inputs, so a few levels leave little to the doubling loop, and fewer
# combines to compile.
_LEVELS_ACROSS_LEAVES = 3
_MIN_LEAF_SIZE = 32


def _length(elems: PyTree) -> int:
    return jax.tree.leaves(elems)[0].shape[0]


def _every_other(elems: PyTree, start: int) -> PyTree:
    return jax.tree.map(lambda x: x[start::2], elems)


def _flip(elems: PyTree) -> PyTree:
    return jax.tree.map(lambda x: jnp.flip(x, axis=0), elems)


def _shift(elems: PyTree, first: PyTree) -> PyTree:
    """`first, elems[0], ..., elems[-2]`: the exclusive form of an inclusive scan."""
    return _tree.concat(_tree.stack_one(first), _tree.time_slice(elems, 0, _length(elems) - 1))


def _interleave(evens: PyTree, odds: PyTree, n: int) -> PyTree:
    """`evens[0], odds[0], evens[1], odds[1], ...`, cut to length `n`."""
    return jax.tree.map(functools.partial(_interleave_one, n), evens, odds)


def _interleave_one(n: int, a, b):
    both = jnp.stack([a, b], axis=1).reshape(2 * a.shape[0], *a.shape[1:])
    return both if 2 * a.shape[0] == n else both[:n]


def _doubling(combine: Callable, identity: PyTree, elems: PyTree) -> PyTree:
    r"""Inclusive forward scan by recursive doubling: $\lceil \log_2 n\rceil$ rounds of
    $y_t \leftarrow y_{t-2^d} \otimes y_t$ (the identity before the start), as one
    `fori_loop` over the rounds."""
    n = _length(elems)
    if n == 1:
        return elems
    round_ = functools.partial(_doubling_round, combine, _tree.repeat(identity, n), n)
    return lax.fori_loop(0, (n - 1).bit_length(), round_, elems)


def _doubling_round(combine: Callable, pad: PyTree, n: int, d, y):
    r"""One round of `_doubling`: $y_t \leftarrow y_{t-2^d} \otimes y_t$."""
    step = jnp.left_shift(1, d)
    earlier = jax.tree.map(lambda a: lax.dynamic_slice_in_dim(a, n - step, n), _tree.concat(pad, y))
    return combine(earlier, y)


class _Reversed(AbstractMonoid):
    """`monoid` with time reversed: a reverse scan of `monoid` is a forward scan of
    `_Reversed(monoid)` over the reversed sequence. `combine` swaps its arguments back,
    so `monoid.combine` is still called as `combine(earlier, later)` in time order."""

    monoid: AbstractMonoid

    @property
    def action_direction(self):
        return "forward"

    @property
    def lifts(self):
        return self.monoid.lifts

    def combine(self, earlier, later):
        return self.monoid.combine(later, earlier)

    def canonical(self, element):
        return self.monoid.canonical(element)

    def identity(self, like):
        return self.monoid.identity(like)

    def lift(self, x):
        return self.monoid.lift(x)

    def act(self, state, element):
        return self.monoid.act(state, element)

    def act_input(self, state, x):
        return self.monoid.act_input(state, x)


class Parallel(AbstractScanMethod):
    r"""A parallel scan of depth $O(\log T)$.

    Three algorithms:

    - `"hybrid"` (default): a work-efficient odd/even scan (Ladner & Fischer;
      Blelloch) whose bottom $L$ = `levels` levels are unrolled and whose top is a
      doubling loop. The up-sweep multiplies neighbours,

      $$x^{(l+1)}_i = x^{(l)}_{2i} \otimes x^{(l)}_{2i+1}, \qquad l = 0, \dots, L-1$$

      (an odd level's last element goes up alone); the $m = \lceil T/2^L\rceil$
      elements left are scanned by `"doubling"`; the down-sweep then fills in each
      level from the prefixes $y^{(l+1)}$ of the level above,

      $$y^{(l)}_{2i+1} = y^{(l+1)}_i, \qquad
        y^{(l)}_{2i} = y^{(l+1)}_{i-1} \otimes x^{(l)}_{2i}.$$

      Work $\approx 2T + m \log_2 m$ combines, depth $2L + \lceil\log_2 m\rceil$, and
      the compiled program holds $2L + 1$ instances of `combine` whatever $T$ is, so
      its compile time does not grow with $T$. With an initial state $s$ the
      down-sweep carries *states* instead of products,
      $s^{(l)}_{2i} = s^{(l+1)}_{i-1} \cdot x^{(l)}_{2i}$ (`act_input` on the inputs
      themselves at the bottom level): $\approx T$ combines and $T$ acts, $L + 1$
      instances of each. The inputs are lifted inside the bottom level's products, so
      what `lift` leaves unbatched (a fixed transition matrix) stays unbatched. The
      reduction is the up-sweep and the doubling scan's last prefix.
    - `"doubling"` (Hillis & Steele / Kogge & Stone): $\lceil\log_2 T\rceil$ rounds
      of $y_t \leftarrow y_{t-2^d} \otimes y_t$ (the identity before the start), one
      loop over the rounds: compile time independent of $T$, but work
      $T\lceil\log_2 T\rceil$ combines.
    - `"associative_scan"`: `jax.lax.associative_scan`, work-efficient, but with one
      unrolled level per power of two, so its compile time grows with $\log T$ (and
      is large for large elements). Its reduction is a balanced tree of depth
      $\lceil \log_2 T \rceil$ (padding with the identity at odd levels).

    **Serial leaves.** Whatever the algorithm, a sequence of $T \ge L_\text{leaf}^2$
    inputs (at least as many leaves as a leaf has inputs; shorter ones are shallower
    without) is first cut into leaves of $L_\text{leaf}$ inputs: each leaf is
    reduced by a loop (all leaves at once under `vmap`), the algorithm scans the
    $\lceil T/L_\text{leaf}\rceil$ leaf products, and each leaf is scanned by a
    loop from the product (or state) before it (the three passes of `Blocked`, with
    `Parallel` across the leaves). This is the usual shape of a parallel scan on
    hardware with fewer processors than inputs: work $\approx 2T$ combines (or $T$
    combines and $T$ acts), depth $2L_\text{leaf} +$ the algorithm's depth on
    $T/L_\text{leaf}$ products, and only $T/L_\text{leaf}$ products held at once.
    By default $L_\text{leaf}$ is the smallest power of two that is at least 32 and
    at least $2E/I$, for elements of $E$ numbers lifted from inputs of $I$ numbers,
    so the leaf products take at most half the memory of the inputs (an HMM's
    $K\times K$ elements against its $K$ log-likelihoods: 32 up to $K = 15$, 64 up
    to $K = 31$). `leaf_size=1` scans the inputs with the algorithm directly.

    A reverse scan of `"hybrid"` or `"doubling"` is the forward scan of the reversed
    sequence with `combine`'s arguments swapped back; every algorithm calls
    `combine(earlier, later)` in time order (`jax.lax.associative_scan`'s swap for
    reverse scans is undone).

    **Arguments:**

    - `algorithm`: `"hybrid"`, `"doubling"` or `"associative_scan"`.
    - `levels`: $L$, the most levels `"hybrid"` unrolls (at most 3 across leaves).
      More levels do less work and have more combines to compile; `levels=0` is
      `"doubling"`.
    - `min_loop_length`: `"hybrid"` unrolls a level only while at least this many
      elements are left for the doubling loop: on fewer, doubling is about as cheap
      and shallower. So sequences shorter than $2^{L}$ `min_loop_length` get fewer
      levels (and compile faster).
    - `leaf_size`: $L_\text{leaf}$, inputs per serial leaf (an `int` $\ge 1$, 1 for
      no leaves), or `None` for the default above.
    """

    combines_with_init: ClassVar[bool] = True

    algorithm: str = eqx.field(default="hybrid", static=True)
    levels: int = eqx.field(default=6, static=True)
    min_loop_length: int = eqx.field(default=16, static=True)
    leaf_size: int | None = eqx.field(default=None, static=True)

    def __check_init__(self):
        check_int("Parallel", "leaf_size", self.leaf_size, 1, optional=True)
        if self.algorithm not in _ALGORITHMS:
            raise ValueError(
                "Parallel(algorithm=...) must be 'hybrid', 'doubling' or 'associative_scan', "
                f"got {self.algorithm!r}."
            )
        if not (isinstance(self.levels, int) and self.levels >= 0):
            raise ValueError(f"Parallel(levels=...) must be an int >= 0, got {self.levels!r}.")
        if not (isinstance(self.min_loop_length, int) and self.min_loop_length >= 1):
            raise ValueError(
                f"Parallel(min_loop_length=...) must be an int >= 1, got {self.min_loop_length!r}."
            )

    def _leaf_size(self, monoid, elems) -> int:
        """`leaf_size`, or by default the smallest power of two that is at least 32 and
        at least twice the ratio of an element's size to an input's (numbers in one
        lifted element over numbers in one input)."""
        if self.leaf_size is not None:
            return self.leaf_size
        inputs = _tree.size(_tree.like_element(elems))
        ratio = _tree.size(element_like(monoid, elems)) / max(inputs, 1)
        return max(_MIN_LEAF_SIZE, 2 ** math.ceil(math.log2(max(2 * ratio, 1))))

    def _leaves(self, monoid, elems) -> Blocked | None:
        """The leaf scan (`Blocked` with this algorithm across the leaves), when the
        sequence has at least as many leaves as a leaf has inputs."""
        size = self._leaf_size(monoid, elems)
        if size == 1 or _length(elems) < size**2:
            return None
        levels = min(self.levels, _LEVELS_ACROSS_LEAVES)
        across = Parallel(self.algorithm, levels, self.min_loop_length, leaf_size=1)
        return Blocked(block_size=size, outer=across)

    def _levels(self, n: int) -> int:
        """How many levels to unroll for length `n`."""
        levels = 0
        while levels < self.levels and n > 1 and -(-n // 2) >= self.min_loop_length:
            n, levels = -(-n // 2), levels + 1
        return levels

    # ----------------------------------------------------------------------------------
    # The hybrid scan (forward; a reverse scan is a forward one of `_Reversed`).
    # ----------------------------------------------------------------------------------

    def _up(self, monoid, elems):
        """The up-sweep over the inputs `elems`: `(tree, top)`, where `tree[l]` holds
        the elements of level `l` at even positions (level 0: the inputs themselves, not
        lifted) and `top` is the level left at the end."""
        n = _length(elems)
        levels = self._levels(n)
        if levels == 0:
            return [], lift_all(monoid, elems)
        # Level 0: lift inside the vmapped product, so that what `lift` leaves unbatched
        # (a fixed HMM transition matrix) stays unbatched: one large matrix product
        # instead of a batch of small ones.
        evens = _every_other(elems, 0)
        odds = _every_other(elems, 1)
        pairs = jax.vmap(lambda a, b: monoid.combine(monoid.lift(a), monoid.lift(b)))
        elems = pairs(_tree.time_slice(evens, 0, n // 2), odds)
        if n % 2:  # the last input has no partner: its element goes up alone
            elems = _tree.concat(elems, lift_all(monoid, _tree.time_slice(evens, n // 2, n)))
        tree = [evens]
        batched = jax.vmap(monoid.combine)
        for _ in range(levels - 1):
            evens, odds = _every_other(elems, 0), _every_other(elems, 1)
            if _length(elems) % 2:
                identity = monoid.identity(_tree.like_element(elems))
                odds = _tree.concat(odds, _tree.stack_one(identity))
            tree.append(evens)
            elems = batched(evens, odds)
        return tree, elems

    def _forward_prefix(self, monoid, elems):
        n = _length(elems)
        identity = monoid.identity(element_like(monoid, elems))
        tree, top = self._up(monoid, elems)
        batched = jax.vmap(monoid.combine)
        out = _doubling(batched, identity, top)
        for level, evens in reversed(list(enumerate(tree))):
            if level == 0:  # the inputs, lifted inside the product
                combine = jax.vmap(lambda a, x: monoid.combine(a, monoid.lift(x)))
            else:
                combine = batched
            # y_{2i} = y_{2i-1} (x) x_{2i}, and y_{2i+1} comes from the level above.
            out = _interleave(combine(_shift(out, identity), evens), out, -(-n // 2**level))
        return out

    def _forward_states(self, monoid, elems, init):
        n = _length(elems)
        identity = monoid.identity(element_like(monoid, elems))
        tree, top = self._up(monoid, elems)
        out = _doubling(jax.vmap(monoid.combine), identity, top)
        out = jax.vmap(monoid.act, in_axes=(None, 0))(init, out)
        for level, evens in reversed(list(enumerate(tree))):
            # (at level 0 the inputs themselves: `act_input`, no element is built)
            act = jax.vmap(monoid.act_input if level == 0 else monoid.act)
            out = _interleave(act(_shift(out, init), evens), out, -(-n // 2**level))
        return out

    def _forward_total(self, monoid, elems):
        identity = monoid.identity(element_like(monoid, elems))
        _, top = self._up(monoid, elems)
        out = _doubling(jax.vmap(monoid.combine), identity, top)
        return _tree.index(out, _length(out) - 1)

    # ----------------------------------------------------------------------------------
    # The method protocol.
    # ----------------------------------------------------------------------------------

    def prefix(self, monoid, elems, reverse):
        if (leaves := self._leaves(monoid, elems)) is not None:
            return leaves.prefix(monoid, elems, reverse)
        if self.algorithm == "hybrid":
            if reverse:
                return _flip(self._forward_prefix(_Reversed(monoid), _flip(elems)))
            return self._forward_prefix(monoid, elems)
        elems = lift_all(monoid, elems)
        batched = jax.vmap(monoid.combine)
        if self.algorithm == "associative_scan":
            if reverse:
                # associative_scan reverses the array and calls fn(later, earlier).
                fn = lambda a, b: batched(b, a)  # noqa: E731
            else:
                fn = batched
            return lax.associative_scan(fn, elems, reverse=reverse)
        identity = monoid.identity(_tree.like_element(elems))
        if reverse:
            return _flip(_doubling(jax.vmap(_Reversed(monoid).combine), identity, _flip(elems)))
        return _doubling(batched, identity, elems)

    def prefix_from(self, monoid, elems, start, reverse):
        if (leaves := self._leaves(monoid, elems)) is not None:
            return leaves.prefix_from(monoid, elems, start, reverse)
        return super().prefix_from(monoid, elems, start, reverse)

    def prefix_act(self, monoid, elems, init, reverse):
        if (leaves := self._leaves(monoid, elems)) is not None:
            return leaves.prefix_act(monoid, elems, init, reverse)
        if self.algorithm == "hybrid":
            if reverse:
                return _flip(self._forward_states(_Reversed(monoid), _flip(elems), init))
            return self._forward_states(monoid, elems, init)
        return super().prefix_act(monoid, elems, init, reverse)

    def states(self, monoid, elems, init, reverse, exclusive=False, readout=None):
        if (leaves := self._leaves(monoid, elems)) is not None:  # (the readout inside the loops)
            return leaves.states(monoid, elems, init, reverse, exclusive, readout)
        return super().states(monoid, elems, init, reverse, exclusive, readout)

    def total(self, monoid, elems):
        if (leaves := self._leaves(monoid, elems)) is not None:
            return leaves.total(monoid, elems)
        if self.algorithm == "hybrid":
            return self._forward_total(monoid, elems)
        if self.algorithm == "doubling":  # a level loop: compile time independent of T
            return _tree.index(self.prefix(monoid, elems, False), _length(elems) - 1)
        elems = lift_all(monoid, elems)
        batched = jax.vmap(monoid.combine)
        n = _length(elems)
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
