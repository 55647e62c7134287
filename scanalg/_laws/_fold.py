"""The reference every scan method is checked against: a plain fold."""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _tree
from .._methods import element_like
from .._monoid import AbstractMonoid

PyTree = Any


def stack(items: list, like: PyTree) -> PyTree:
    """Stack single elements (or states) along a new leading axis; `like` gives the
    structure, shapes and dtypes when there are none."""
    if not items:
        return jax.tree.map(lambda x: jnp.zeros((0, *jnp.shape(x)), jnp.result_type(x)), like)
    return jax.tree.map(lambda *xs: jnp.stack(xs), *items)


def stack_on_host(items: list, like: PyTree) -> PyTree:
    """`stack` for concrete arrays, in NumPy (no compilation per length)."""
    if not items:
        return stack(items, like)
    return jax.tree.map(lambda *xs: jnp.asarray(np.stack([np.asarray(x) for x in xs])), *items)


def fold(
    monoid: AbstractMonoid,
    xs: PyTree,
    *,
    init: PyTree | None = None,
    reverse: bool = False,
    exclusive: bool = False,
) -> PyTree:
    r"""The reference for `scanalg.scan`: a plain fold, one element at a time.

    A Python loop over time (unrolled under `jit`), independent of every scan method.
    With $x_t$ = `monoid.lift` of the $t$-th input: forward without `init`:
    $y_0 = x_0$, $y_t = y_{t-1} \otimes x_t$; reverse: $y_{T-1} = x_{T-1}$,
    $y_t = x_t \otimes y_{t+1}$; with `init` $s$ the states
    $s_t = \mathrm{act}(s_{t-1}, x_t)$ forward and $s_t = \mathrm{act}(s_{t+1}, x_t)$
    reverse, starting from $s$. `exclusive` records the value before each step (the
    identity, or $s$, at the start).

    **Arguments:**

    - `monoid`: the monoid.
    - `xs`: inputs (elements, for monoids without `lift`) stacked along a leading
      time axis.
    - `init`, `reverse`, `exclusive`: as for `scanalg.scan`.

    **Returns:**

    What `scanalg.scan(monoid, xs, init=init, reverse=reverse, exclusive=exclusive)`
    should return.
    """
    n = jax.tree.leaves(xs)[0].shape[0]
    like = element_like(monoid, xs)
    order = range(n - 1, -1, -1) if reverse else range(n)
    if init is None:
        carry = monoid.identity(like)  # only ever returned by exclusive scans
    else:
        carry = init
    before, after = {}, {}
    for i, t in enumerate(order):
        x = monoid.lift(_tree.index(xs, t))
        before[t] = carry
        if init is not None:
            carry = monoid.act(carry, x)
        elif i == 0:
            carry = x
        else:
            carry = monoid.combine(x, carry) if reverse else monoid.combine(carry, x)
        after[t] = carry
    out = before if exclusive else after
    return stack([out[t] for t in range(n)], like if init is None else init)
