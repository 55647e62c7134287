"""The single entry point: `scan` and `reduce`."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import PyTree

from . import _tree
from ._methods import AbstractScanMethod, as_method, element_like, shift
from ._monoid import AbstractMonoid, has_act, supports_direction


def _check_monoid(monoid: Any) -> None:
    if not isinstance(monoid, AbstractMonoid):
        raise TypeError(
            f"`monoid` must be an instance of scanalg.AbstractMonoid, got {type(monoid).__name__}."
        )


def _length(elems: PyTree) -> int:
    leaves = jax.tree.leaves(elems)
    if not leaves:
        raise ValueError("`elems` has no array leaves; it needs a leading time axis.")
    lengths = []
    for leaf in leaves:
        shape = jnp.shape(leaf)
        if len(shape) == 0:
            raise ValueError("Every leaf of `elems` needs a leading time axis; got a scalar leaf.")
        lengths.append(shape[0])
    if len(set(lengths)) > 1:
        raise ValueError(
            f"All leaves of `elems` must share the leading time length; got lengths {lengths}."
        )
    return lengths[0]


def _same_signature(expected: PyTree, got: PyTree) -> str | None:
    """Why `got` differs from `expected` in structure, shape or dtype (None if it doesn't)."""
    t_exp, t_got = jax.tree.structure(expected), jax.tree.structure(got)
    if t_exp != t_got:
        return f"structure {t_got} instead of {t_exp}"
    for i, (a, b) in enumerate(zip(jax.tree.leaves(expected), jax.tree.leaves(got))):
        if a.shape != b.shape or jnp.dtype(a.dtype) != jnp.dtype(b.dtype):
            return (
                f"leaf {i} is {jnp.dtype(b.dtype).name}{list(b.shape)} "
                f"instead of {jnp.dtype(a.dtype).name}{list(a.shape)}"
            )
    return None


def check_signatures(monoid: AbstractMonoid, like: PyTree, init: PyTree | None = None) -> None:
    """Check at trace time that `combine`, `identity` (and `act`) keep structure,
    shapes and dtypes. Raises `TypeError` naming the monoid and the mismatch."""
    name = type(monoid).__name__
    problems = [
        ("identity(like)", jax.eval_shape(monoid.identity, like), like),
        ("combine(a, b)", jax.eval_shape(monoid.combine, like, like), like),
    ]
    if init is not None:
        problems.append(("act(state, element)", jax.eval_shape(monoid.act, init, like), init))
    for what, got, expected in problems:
        why = _same_signature(expected, got)
        if why is not None:
            raise TypeError(f"{name}.{what} changed the element: it returned {why}.")


def _prepare(monoid, elems, init, method, reverse):
    _check_monoid(monoid)
    elems = jax.tree.map(jnp.asarray, elems)
    n = _length(elems)
    method = as_method(method)
    if init is not None:
        init = jax.tree.map(jnp.asarray, init)
        if not has_act(monoid):
            name = type(monoid).__name__
            if type(monoid).act is AbstractMonoid.act:
                why = f"{name} defines no `act`; scan without `init`, or give it an `act` method."
            else:  # a combinator whose parts have no (common) action
                why = f"this {name} has no lawful `act` (its action_direction is None): {monoid!r}."
            raise TypeError(f"`init` was given but {why}")
        if not supports_direction(monoid, reverse):
            direction = "reverse" if reverse else "forward"
            raise TypeError(
                f"{type(monoid).__name__}.act is a {monoid.action_direction} action; a "
                f"{direction} scan with `init` needs a {direction} (or 'both') action. "
                "Scan in the other direction, or use the dual monoid."
            )
    check_signatures(monoid, element_like(monoid, elems), init)
    return elems, n, method, init


def scan(
    monoid: AbstractMonoid,
    elems: PyTree,
    *,
    init: PyTree | None = None,
    reverse: bool = False,
    exclusive: bool = False,
    readout: Callable[[PyTree, PyTree], PyTree] | None = None,
    method: str | AbstractScanMethod = "auto",
) -> PyTree:
    r"""Scan `elems` with `monoid`: all prefix (or suffix) products, or states.

    **Main arguments:**

    - `monoid`: an `scanalg.AbstractMonoid`.
    - `elems`: a pytree of arrays sharing a leading time axis of length $T \ge 0$;
      element $x_t$ is `monoid.lift` of the pytree of the leaves' $t$-th slices
      (`lift` is the identity unless the monoid defines it).

    **Other arguments:**

    - `init`: an initial state. If given, the monoid's `act` is used and the scan
      returns states instead of products.
    - `reverse`: scan from the end: suffix products instead of prefix products.
    - `exclusive`: leave out the current element (shift by one, starting from the
      identity, or from `init`).
    - `readout`: with `init` only, a function `readout(state, x)` of a state and the
      *input* $x_t$ at the same step; the scan then returns `readout(s_t, x_t)`
      stacked over time instead of the states $s_t$. `Sequential` and `Blocked`
      evaluate it inside their loops, so the states are never stored and work shared
      with `act` is done once (XLA merges common subexpressions of a loop body); the
      other methods apply it afterwards under `vmap`. With `exclusive=True`, $s_t$ is
      the state *before* step $t$: e.g. an HMM filter reads the filtered
      distribution out of the prediction $s_t$ and the observation in $x_t$.
    - `method`: `"sequential"`, `"parallel"`, `"blocked"`, `"auto"` or an
      `AbstractScanMethod` instance such as `Blocked(block_size=64)`.

    **Returns:**

    A pytree with the structure of `elems` (or of `init`, stacked along time):

    $$y_t = x_1 \otimes\cdots\otimes x_t, \qquad
      \text{reverse: } y_t = x_t \otimes\cdots\otimes x_T,$$

    or with `init` $s$, the states $s \cdot y_t$. `combine` is always called as
    `combine(earlier, later)`. Exclusive scans return $y_{t-1}$ (forward) or
    $y_{t+1}$ (reverse), with the identity (or $s$) at the boundary.
    """
    elems, n, method, init = _prepare(monoid, elems, init, method, reverse)
    if readout is not None and init is None:
        raise TypeError("`readout` needs `init`: it reads out the states of the scan.")
    if n == 0:
        if init is None:
            return elems
        like = init
        if readout is not None:
            like = jax.eval_shape(readout, init, _tree.like_element(elems))
        return jax.tree.map(lambda s: jnp.zeros((0, *s.shape), s.dtype), like)
    method = method.resolve(monoid, elems, init)
    if init is not None:
        return method.states(monoid, elems, init, reverse, exclusive, readout)
    out = method.prefix(monoid, elems, reverse)
    if exclusive:
        out = shift(out, monoid.identity(element_like(monoid, elems)), reverse)
    return out


def reduce(
    monoid: AbstractMonoid,
    elems: PyTree,
    *,
    method: str | AbstractScanMethod = "auto",
) -> PyTree:
    r"""The product of all elements, $x_1 \otimes\cdots\otimes x_T$.

    **Arguments:**

    - `monoid`: an `scanalg.AbstractMonoid`.
    - `elems`: a pytree of arrays sharing a leading time axis of length $T \ge 0$.
    - `method`: as for `scanalg.scan`.

    **Returns:**

    A single element (no time axis); the identity when $T = 0$.
    """
    elems, n, method, _ = _prepare(monoid, elems, None, method, False)
    if n == 0:
        return monoid.identity(element_like(monoid, elems))
    return method.resolve(monoid, elems, None).total(monoid, elems)
