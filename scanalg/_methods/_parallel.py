"""`Parallel`: associative scans of logarithmic depth."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp

from .. import _tree
from ._base import (
    AbstractScanMethod,
    lift_all,
)


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

    combines_with_init: ClassVar[bool] = True

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
