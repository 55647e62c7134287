"""The single entry point: `scan` and `reduce`."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
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
        if getattr(b, "weak_type", False) and not getattr(a, "weak_type", False):
            return (
                f"leaf {i} is a Python number (or a weakly typed array) instead of an array "
                f"of dtype {jnp.dtype(a.dtype).name}: return arrays with the dtypes of "
                "the element, e.g. `jnp.zeros_like(like)`"
            )
    return None


def _zeros(shapes: PyTree) -> PyTree:
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def _dtype_hint(like: PyTree, init: PyTree) -> str:
    """A suggestion when `init` has a different floating dtype from the elements."""

    def floating(tree):
        return {
            jnp.dtype(x.dtype).name
            for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)
        }

    ours, theirs = floating(like), floating(init)
    if len(ours) == 1 and theirs and theirs != ours:
        return (
            f" The elements are {ours.pop()} and `init` is {', '.join(sorted(theirs))}: "
            "give `init` the dtype of the elements."
        )
    return ""


def _check_act(monoid: AbstractMonoid, like: PyTree, init: PyTree) -> None:
    """Check `act(init, element)` at trace time, blaming `init` when it is `init` that
    does not fit (a wrong shape or dtype), and `act` when `act` changes a state."""
    name = type(monoid).__name__
    try:
        got = jax.eval_shape(monoid.act, init, like)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{name}.act(init, element) fails for `init` = {_tree.describe(init)} and an "
            f"element {_tree.describe(like)} ({type(e).__name__}: {e}). Is `init` a state of "
            f"{name} (its structure, shapes and dtypes)?{_dtype_hint(like, init)}"
        ) from e
    why = _same_signature(init, got)
    if why is None:
        return
    # If `act` keeps a state of the signature it returns, it is `init` that is wrong.
    try:
        again = jax.eval_shape(monoid.act, _zeros(got), like)
        blame_init = _same_signature(got, again) is None
    except (TypeError, ValueError):
        blame_init = False
    if blame_init:
        raise TypeError(
            f"`init` is {_tree.describe(init)}, but {name}.act turns it into "
            f"{_tree.describe(got)} (and keeps states of that kind): pass `init` with the "
            f"structure, shapes and dtypes of a state.{_dtype_hint(like, init)}"
        )
    raise TypeError(f"{name}.act(state, element) changed the element: it returned {why}.")


def _abstract(tree: PyTree) -> tuple:
    """A hashable key of a pytree's structure, static leaves, and array signatures."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple(
        (jnp.shape(x), jnp.dtype(x.dtype), getattr(x, "weak_type", False)) if eqx.is_array(x) else x
        for x in leaves
    )


_checked: set = set()  # signatures that passed `check_signatures` (they depend on no value)


def check_signatures(monoid: AbstractMonoid, like: PyTree, init: PyTree | None = None) -> None:
    """Check at trace time that `identity` and `combine` return arrays of the element's
    structure, shapes and dtypes, and that `act` does for states. Raises `TypeError`
    naming the monoid and the mismatch, or `init` when it is `init` that does not fit.

    The outcome depends only on the monoid's class, static fields and the shapes and
    dtypes involved, so a combination that passed once is not traced again."""
    try:
        key = _abstract((monoid, like, init))
        hash(key)
    except TypeError:  # an unhashable static field: check every time
        key = None
    if key is not None and key in _checked:
        return
    _check_signatures(monoid, like, init)
    if key is not None:
        if len(_checked) > 4096:
            _checked.clear()
        _checked.add(key)


def _check_signatures(monoid: AbstractMonoid, like: PyTree, init: PyTree | None) -> None:
    name = type(monoid).__name__
    for what, got in (
        ("identity(like)", jax.eval_shape(monoid.identity, like)),
        ("combine(a, b)", jax.eval_shape(monoid.combine, like, like)),
    ):
        why = _same_signature(like, got)
        if why is not None:
            raise TypeError(f"{name}.{what} changed the element: it returned {why}.")
    if init is not None:
        _check_act(monoid, like, init)


def _no_action_reason(monoid: AbstractMonoid, init: PyTree, like: PyTree) -> str:
    """Why `monoid` has no action, in the words of its `act` (combinators say why)."""
    try:
        jax.eval_shape(monoid.act, init, like)
    except (NotImplementedError, TypeError) as e:
        return str(e)
    return f"{type(monoid).__name__}.action_direction is None."


def _prepare(monoid, elems, init, method, reverse):
    _check_monoid(monoid)
    elems = jax.tree.map(jnp.asarray, elems)
    n = _length(elems)
    method = as_method(method)
    if init is not None:
        init = jax.tree.map(jnp.asarray, init)
        if not has_act(monoid):
            why = _no_action_reason(monoid, init, element_like(monoid, elems))
            raise TypeError(
                f"`init` was given but {type(monoid).__name__} has no action: {why} Scan "
                "without `init`, or give the monoid an `act` and declare its "
                "`action_direction`."
            )
        if not supports_direction(monoid, reverse):
            direction = "reverse" if reverse else "forward"
            raise TypeError(
                f"{type(monoid).__name__}.act is a {monoid.action_direction} action; a "
                f"{direction} scan with `init` needs a {direction} (or 'both') action. "
                "Scan in the other direction, or use the dual monoid."
            )
    elems, init = monoid.check_inputs(elems, init)
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
        if init is None:  # no elements: an empty sequence of (lifted) elements
            return _tree.repeat(element_like(monoid, elems), 0)
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
