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


def element_like(monoid: AbstractMonoid, elems: PyTree) -> PyTree:
    """Zeros shaped like one lifted element of the inputs `elems`."""
    shapes = jax.eval_shape(monoid.lift, _tree.like_element(elems))
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def lift_all(monoid: AbstractMonoid, elems: PyTree) -> PyTree:
    """Lift every input to its element (a no-op for monoids without `lift`)."""
    if type(monoid).lift is AbstractMonoid.lift:
        return elems
    return jax.vmap(monoid.lift)(elems)


def combine_step(monoid: AbstractMonoid, reverse: bool) -> Callable:
    """`step(carry, x)`: the carry times the lifted input, in time order."""
    # The carry holds the product of the elements already visited; in a reverse
    # scan those are *later* in time, so the new element goes on the left.
    if reverse:
        return lambda carry, x: monoid.combine(monoid.lift(x), carry)
    return lambda carry, x: monoid.combine(carry, monoid.lift(x))


def act_step(monoid: AbstractMonoid) -> Callable:
    """`step(state, x)`: the state acted on by the input (`monoid.act_input`)."""
    return monoid.act_input


def emitter(exclusive: bool, readout: Callable | None) -> Callable:
    """`emit(before, after, x)`: what a loop step outputs: the state (before the step
    if `exclusive`, after it otherwise), passed through `readout(state, x)` if given."""

    def emit(before, after, x):
        state = before if exclusive else after
        return state if readout is None else readout(state, x)

    return emit


def loop(
    step: Callable,
    carry: PyTree,
    xs: PyTree,
    *,
    reverse: bool,
    unroll: int,
    keep: bool = True,
    exclusive: bool = False,
    valid: jax.Array | None = None,
    emit: Callable | None = None,
) -> tuple[PyTree, PyTree]:
    """A `lax.scan` of `step(carry, x) -> carry`, returning the final carry and, per
    step, `emit(before, after, x)` (default: the carry after the step, or before it
    if `exclusive`).

    Steps where `valid` is false leave the carry unchanged (used for padding).
    """
    emit = emitter(exclusive, None) if emit is None else emit

    def body(c, inputs):
        x, ok = inputs
        new = step(c, x)
        if ok is not None:
            new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, c)
        if not keep:
            return new, None
        return new, emit(c, new, x)

    return lax.scan(body, carry, (xs, valid), reverse=reverse, unroll=unroll)


class _Elements(AbstractMonoid):
    """`monoid` seen on already-lifted elements (its `lift` is the identity)."""

    monoid: AbstractMonoid

    @property
    def action_direction(self):
        return self.monoid.action_direction

    def combine(self, earlier, later):
        return self.monoid.combine(earlier, later)

    def identity(self, like):
        return self.monoid.identity(like)

    def act(self, state, element):
        return self.monoid.act(state, element)

    def act_input(self, state, element):
        return self.monoid.act(state, element)


def on_elements(monoid: AbstractMonoid) -> AbstractMonoid:
    """The same monoid, taking elements instead of inputs."""
    if type(monoid).lift is AbstractMonoid.lift:
        return monoid
    return _Elements(monoid)


class AbstractScanMethod(eqx.Module):
    """How a scan is executed: sequentially, in parallel, by blocks, ...

    Subclasses implement `prefix` and `total` for sequences of length at least one;
    `scan` and `reduce` handle empty sequences, exclusive scans and validation.
    """

    @abc.abstractmethod
    def prefix(self, monoid: AbstractMonoid, elems: PyTree, reverse: bool) -> PyTree:
        r"""Inclusive prefix products $x_1 \otimes\cdots\otimes x_t$ (suffix products
        $x_t \otimes\cdots\otimes x_T$ when `reverse`), stacked along time.

        **Arguments:**

        - `monoid`: the monoid; its `lift` turns each input into an element.
        - `elems`: the inputs, a pytree of arrays with a leading time axis of length
          $T \ge 1$.
        - `reverse`: suffix instead of prefix products.

        **Returns:**

        The $T$ products, stacked along a leading time axis, with the structure of one
        (lifted) element.
        """

    @abc.abstractmethod
    def total(self, monoid: AbstractMonoid, elems: PyTree) -> PyTree:
        r"""The product of all elements, $x_1 \otimes\cdots\otimes x_T$.

        **Arguments:**

        - `monoid`: the monoid.
        - `elems`: the inputs, with a leading time axis of length $T \ge 1$.

        **Returns:**

        A single element (no time axis).
        """

    def prefix_act(
        self, monoid: AbstractMonoid, elems: PyTree, init: PyTree, reverse: bool
    ) -> PyTree:
        r"""The states `act(init, prefix_t)`, stacked along time.

        The default computes the prefix products and applies each to `init`.

        **Arguments:**

        - `monoid`: a monoid with an `act` lawful in this direction.
        - `elems`: the inputs, with a leading time axis of length $T \ge 1$.
        - `init`: the initial state $s$.
        - `reverse`: carry the state backwards in time.

        **Returns:**

        The states $s \cdot (x_1 \otimes\cdots\otimes x_t)$ (reverse:
        $s \cdot (x_t \otimes\cdots\otimes x_T)$), stacked along a leading time axis,
        with the structure of `init`.
        """
        prefixes = self.prefix(monoid, elems, reverse)
        return jax.vmap(monoid.act, in_axes=(None, 0))(init, prefixes)

    def states(
        self,
        monoid: AbstractMonoid,
        elems: PyTree,
        init: PyTree,
        reverse: bool,
        exclusive: bool = False,
        readout: Callable | None = None,
    ) -> PyTree:
        r"""The states of a scan with an initial state, optionally read out per step.

        The default runs `prefix_act`, shifts for an exclusive scan, and applies
        `readout` to every (state, input) pair under `vmap`; loop-based methods fuse
        the readout into their loop instead, so the states are never stored.

        **Arguments:**

        - `monoid`, `elems`, `init`, `reverse`: as for `prefix_act`.
        - `exclusive`: the state before each step instead of after it.
        - `readout`: `None`, or a function `readout(state, x)` of a state and the input
          at the same step.

        **Returns:**

        The states (or their readouts), stacked along a leading time axis.
        """
        out = self.prefix_act(monoid, elems, init, reverse)
        if exclusive:
            out = shift(out, init, reverse)
        if readout is not None:
            out = jax.vmap(readout)(out, elems)
        return out

    def resolve(
        self, monoid: AbstractMonoid, elems: PyTree, init: PyTree | None
    ) -> "AbstractScanMethod":
        """The concrete method to run (only `Auto` chooses; others return `self`).

        Called at trace time, so it may look only at static information: the backend,
        the shapes and dtypes of `elems` and `init`, and the monoid.

        **Arguments:**

        - `monoid`: the monoid to scan.
        - `elems`: the inputs, with a leading time axis.
        - `init`: the initial state, or `None`.

        **Returns:**

        An `AbstractScanMethod` that is not `Auto`.
        """
        return self


class Sequential(AbstractScanMethod):
    r"""A `jax.lax.scan` over time: $T$ steps of depth one.

    With an initial state it calls only `act` per step, so a scan carrying a
    $K$-vector through $K\times K$ elements costs $O(K^2)$ per step.

    **Arguments:**

    - `unroll`: how many steps `lax.scan` unrolls per iteration.
    """

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
    The reduction is the last prefix with `"doubling"` (the same level loop), and a
    balanced tree of depth $\lceil \log_2 T \rceil$ with `"associative_scan"`
    (padding with the identity at odd levels).

    **Arguments:**

    - `algorithm`: `"doubling"` or `"associative_scan"`.
    """

    algorithm: str = eqx.field(default="doubling", static=True)

    def __check_init__(self):
        if self.algorithm not in ("doubling", "associative_scan"):
            raise ValueError(
                "Parallel(algorithm=...) must be 'doubling' or 'associative_scan', "
                f"got {self.algorithm!r}."
            )

    def prefix(self, monoid, elems, reverse):
        elems = lift_all(monoid, elems)
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
        if self.algorithm == "doubling":  # a level loop: compile time independent of T
            n = jax.tree.leaves(elems)[0].shape[0]
            return _tree.index(self.prefix(monoid, elems, False), n - 1)
        elems = lift_all(monoid, elems)
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
