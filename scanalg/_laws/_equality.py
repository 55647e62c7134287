"""Equality of the two sides of a law: dtype-aware tolerances, and error reports."""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._law import Cases

PyTree = Any


def tolerance(dtype) -> tuple[float, float]:
    r"""The default `(rtol, atol)` for a dtype: $\sqrt{\varepsilon}$ for inexact
    dtypes ($1.5\cdot 10^{-8}$ for float64, $3.5\cdot 10^{-4}$ for float32), exact
    (`(0, 0)`) otherwise."""
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.inexact):
        eps = float(jnp.finfo(dtype).eps)
        return eps**0.5, eps**0.5
    return 0.0, 0.0


def _leaf_close(a, b, rtol, atol) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    dtype = jnp.result_type(a.dtype, b.dtype)
    if not jnp.issubdtype(dtype, jnp.inexact):
        return bool(np.array_equal(a, b))
    default_rtol, default_atol = tolerance(dtype)
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    wide = np.complex128 if jnp.issubdtype(dtype, jnp.complexfloating) else np.float64
    a, b = a.astype(wide), b.astype(wide)
    with np.errstate(invalid="ignore", over="ignore"):
        close = (a == b) | (np.isnan(a) & np.isnan(b))
        finite = np.isfinite(a) & np.isfinite(b)
        close |= finite & (np.abs(a - b) <= atol + rtol * np.maximum(np.abs(a), np.abs(b)))
    return bool(np.all(close))


def allclose(x: PyTree, y: PyTree, *, rtol: float | None = None, atol: float | None = None) -> bool:
    r"""Dtype-aware equality of two pytrees, the default of `check_laws`.

    Same structure and shapes; integer and boolean leaves equal exactly; inexact
    leaves satisfy $|x - y| \le \text{atol} + \text{rtol}\max(|x|, |y|)$ elementwise,
    with equal infinities and NaN against NaN counting as equal.

    **Arguments:**

    - `x`, `y`: pytrees of arrays.
    - `rtol`, `atol`: tolerances for inexact leaves; `None` takes them from each
      leaf's dtype (see `scanalg.laws.tolerance`).

    **Returns:**

    A Python `bool`.
    """
    if jax.tree.structure(x) != jax.tree.structure(y):
        return False
    return all(
        _leaf_close(a, b, rtol, atol) for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y))
    )


def error_size(x: PyTree, y: PyTree) -> tuple[float, str]:
    """The size of the disagreement between two sides: (number, description)."""
    if jax.tree.structure(x) != jax.tree.structure(y):
        return float("inf"), (
            f"the sides differ in structure: {jax.tree.structure(x)} vs {jax.tree.structure(y)}"
        )
    worst_abs, worst_rel, differing, total, inexact = 0.0, 0.0, 0, 0, False
    for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return float("inf"), f"the sides differ in shape: {a.shape} vs {b.shape}"
        total += a.size
        if not jnp.issubdtype(jnp.result_type(a.dtype, b.dtype), jnp.inexact):
            differing += int(np.sum(a != b))
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            worst_abs = max(worst_abs, float(np.max(diff, initial=0.0)))
            continue
        inexact = True
        wide = np.complex128 if np.iscomplexobj(a) or np.iscomplexobj(b) else np.float64
        a, b = a.astype(wide), b.astype(wide)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            same = (a == b) | (np.isnan(a) & np.isnan(b))
            diff = np.where(same, 0.0, np.abs(a - b))
            diff = np.where(np.isnan(diff), np.inf, diff)  # NaN against a number
            scale = np.maximum(np.abs(a), np.abs(b))
            rel = np.where(diff == 0, 0.0, diff / np.where(scale > 0, scale, 1.0))
        differing += int(np.sum(~same))
        worst_abs = max(worst_abs, float(np.max(diff, initial=0.0)))
        worst_rel = max(worst_rel, float(np.max(np.nan_to_num(rel, nan=np.inf), initial=0.0)))
    if not inexact:
        return worst_abs, f"{differing} of {total} entries differ (max |lhs - rhs| = {worst_abs:g})"
    return worst_abs, (
        f"max |lhs - rhs| = {worst_abs:.6g} (relative {worst_rel:.3g}); "
        f"{differing} of {total} entries differ"
    )


def equality_description(equal, rtol, atol, sides: PyTree) -> str:
    """How the sides were compared, for a report."""
    if not (isinstance(equal, functools.partial) and equal.func is allclose):
        name = getattr(equal, "__qualname__", None) or repr(equal)
        return f"Compared with equal={name}."
    dtypes = sorted(
        {
            jnp.dtype(x.dtype).name
            for x in jax.tree.leaves(sides)
            if jnp.issubdtype(x.dtype, jnp.inexact)
        }
    )
    parts = []
    for name in dtypes:
        default_rtol, default_atol = tolerance(name)
        r = default_rtol if rtol is None else rtol
        a = default_atol if atol is None else atol
        parts.append(f"{name}: rtol={r:.3g}, atol={a:.3g}")
    tol = "; ".join(parts) if parts else "integer leaves exactly"
    return (
        "Compared with scanalg.laws.allclose, |lhs - rhs| <= atol + rtol * max(|lhs|, |rhs|) "
        f"({tol})."
    )


def sides_by_case(lhs: PyTree, rhs: PyTree) -> list[tuple[str | None, PyTree, PyTree]]:
    """Split sides with one entry per case (`Cases`) into cases."""
    if isinstance(lhs, Cases) and isinstance(rhs, Cases) and lhs.keys() == rhs.keys():
        return [(k, lhs[k], rhs[k]) for k in lhs]
    return [(None, lhs, rhs)]


def has_nan(tree: PyTree) -> bool:
    """Whether any inexact leaf of `tree` contains a NaN."""
    return any(
        jnp.issubdtype(x.dtype, jnp.inexact) and bool(np.any(np.isnan(np.asarray(x))))
        for x in jax.tree.leaves(tree)
    )


def failing_cases(
    equal: Callable, lhs: PyTree, rhs: PyTree, forbid_nan: bool
) -> list[tuple[str | None, PyTree, PyTree]]:
    """The cases whose sides differ (or, with `forbid_nan`, contain a NaN)."""
    return [
        (k, a, b)
        for k, a, b in sides_by_case(lhs, rhs)
        if not bool(equal(a, b)) or (forbid_nan and has_nan((a, b)))
    ]
