"""The method protocol `AbstractScanMethod` and the loop helpers every method uses."""

import abc
import functools
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp

from .. import _tree
from .._monoid import AbstractMonoid, has_lift

PyTree = Any


def element_like(monoid: AbstractMonoid, elems: PyTree) -> PyTree:
    """Zeros shaped like one lifted element of the inputs `elems`."""
    shapes = jax.eval_shape(monoid.lift, _tree.like_element(elems))
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def lift_all(monoid: AbstractMonoid, elems: PyTree) -> PyTree:
    """Lift every input to its element (a no-op for monoids without `lift`)."""
    if not has_lift(monoid):
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


# (The helpers that the functions below return or pass to JAX are module-level
# functions bound with `functools.partial`, not closures: a closure is a new function
# at every call, which a decorating import hook, e.g. jaxtyping's in the tests, then
# decorates again at every scan.)


def _emit(exclusive: bool, readout: Callable | None, before, after, x):
    state = before if exclusive else after
    return state if readout is None else readout(state, x)


def emitter(exclusive: bool, readout: Callable | None) -> Callable:
    """`emit(before, after, x)`: what a loop step outputs: the state (before the step
    if `exclusive`, after it otherwise), passed through `readout(state, x)` if given."""
    return functools.partial(_emit, exclusive, readout)


def _loop_body(step: Callable, emit: Callable, keep: bool, c, x):
    new = step(c, x)
    return new, (emit(c, new, x) if keep else None)


def loop(
    step: Callable,
    carry: PyTree,
    xs: PyTree,
    *,
    reverse: bool,
    unroll: int,
    keep: bool = True,
    exclusive: bool = False,
    emit: Callable | None = None,
) -> tuple[PyTree, PyTree]:
    """A `lax.scan` of `step(carry, x) -> carry`, returning the final carry and, per
    step, `emit(before, after, x)` (default: the carry after the step, or before it
    if `exclusive`; nothing if not `keep`)."""
    emit = emitter(exclusive, None) if emit is None else emit
    body = functools.partial(_loop_body, step, emit, keep)
    return lax.scan(body, carry, xs, reverse=reverse, unroll=unroll)


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
    if not has_lift(monoid):
        return monoid
    return _Elements(monoid)


def check_int(owner: str, field: str, value: Any, minimum: int, *, optional=False) -> None:
    """Raise `TypeError` unless `value` is an `int` (not a `bool`; `None` too if
    `optional`), and `ValueError` unless it is at least `minimum`."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "None or an int" if optional else "an int"
        raise TypeError(f"{owner}({field}=...) must be {kind}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{owner}({field}=...) must be >= {minimum}, got {value!r}.")


def check_method(owner: str, field: str, value: Any, *, single_device: bool = False) -> None:
    """Raise `TypeError` unless `value` is a scan method (one that runs on one device,
    if `single_device`)."""
    if not isinstance(value, AbstractScanMethod) or (single_device and value.multi_device):
        kind = "a single-device scan method" if single_device else "a scan method"
        raise TypeError(f"{owner}({field}=...) must be {kind}, got {value!r}.")


class AbstractScanMethod(eqx.Module):
    """How a scan is executed: sequentially, in parallel, by blocks, ...

    Subclasses implement `prefix` and `total` for sequences of length at least one;
    `scan` and `reduce` handle empty sequences, exclusive scans and validation.

    **Declared properties** (what models and other methods need to know about a
    method; nothing inspects its class):

    - `combines_with_init`: whether a scan with an initial state forms products of
      elements (`combine`) at all. `False` means it only calls `act_input` once per
      step, in order (`Sequential`): then the cost of a scan is the cost of
      `act_input`, and a model may pick a cheaper input form for it.
    - `scans_from_start` (default `False`): whether `prefix_from` costs no more than
      `prefix` (a loop that starts from the given element; the default `prefix_from`
      combines the start into every product afterwards). Then a blocked scan reduces
      each block first and scans it from its start; otherwise it scans each block
      first, reads the block's product off its last prefix and combines the start in.
    - `multi_device` (default `False`): whether the method spreads one scan over
      several devices (so it cannot scan one device's chunk inside another such
      method).

    A method that only chooses another (`Auto`) declares what holds for every
    choice; `resolve` gives the method that runs, and is what `Blocked` and
    `Sharded` ask.
    """

    combines_with_init: eqx.AbstractClassVar[bool]
    scans_from_start: ClassVar[bool] = False
    multi_device: ClassVar[bool] = False

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

    def prefix_from(
        self, monoid: AbstractMonoid, elems: PyTree, start: PyTree, reverse: bool
    ) -> PyTree:
        r"""Inclusive prefix products that start from the element `start`.

        The default computes `prefix` and combines `start` into every product
        (`scans_from_start` is then `False`); a loop starts from `start` instead.

        **Arguments:**

        - `monoid`, `elems`, `reverse`: as for `prefix`.
        - `start`: a single (lifted) element $s$: the product of everything before
          the sequence in scan order.

        **Returns:**

        The products $s \otimes x_1 \otimes\cdots\otimes x_t$ (reverse:
        $x_t \otimes\cdots\otimes x_T \otimes s$), stacked along a leading time axis.
        """
        return combine_start(monoid, start, self.prefix(monoid, elems, reverse), reverse)

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


def combine_start(monoid: AbstractMonoid, start: PyTree, products: PyTree, reverse: bool):
    """`start` combined into each of `products` (stacked along time): on the left in a
    forward scan, on the right in a reverse one (time order)."""
    if reverse:
        return jax.vmap(monoid.combine, in_axes=(0, None))(products, start)
    return jax.vmap(monoid.combine, in_axes=(None, 0))(start, products)


def shift(inclusive: PyTree, first: PyTree, reverse: bool) -> PyTree:
    """Turn an inclusive scan into an exclusive one, starting from `first`.

    Written as a same-length `lax.pad` (not slice-and-concatenate) so that a sequence
    sharded along time keeps its sharding (see `Sharded`).
    """
    return jax.tree.map(functools.partial(_shift_one, reverse), inclusive, first)


def _shift_one(reverse: bool, x, f):
    n = x.shape[0]
    config = [(-1, 1, 0)] if reverse else [(1, -1, 0)]
    moved = lax.pad(x, jnp.zeros((), x.dtype), config + [(0, 0, 0)] * (x.ndim - 1))
    at = lax.broadcasted_iota(jnp.int32, (n,) + (1,) * (x.ndim - 1), 0)
    return jnp.where(at == (n - 1 if reverse else 0), f[None], moved)
