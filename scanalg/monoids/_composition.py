"""Finite maps under composition."""

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Shaped

from .._monoid import AbstractMonoid, ActionDirection


def _check_indices(name: str, x: Array, k: int, check_range: bool) -> Array:
    """`x` with a trace-time dtype check and (if `check_range`) a run-time range check
    against `[0, k)`."""
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(
            f"FiniteFunction needs integer `{name}` (indices into [0, K)), got "
            f"{jnp.dtype(x.dtype).name}."
        )
    if not check_range:
        return x
    return eqx.error_if(
        x, (x < 0) | (x >= k), f"FiniteFunction: `{name}` has an entry outside [0, K = {k})."
    )


class FiniteFunction(AbstractMonoid):
    r"""Maps $f: [K] \to [K]$, stored as integer arrays `f` of shape `(K,)`, under
    composition.

    The earlier map is applied *last*, as in a backward chain
    $z_t = f_t(z_{t+1})$:

    $$f \otimes g = f \circ g, \qquad (f \otimes g)[j] = f[g[j]],$$

    identity `arange(K)`. The action on an integer state is evaluation,
    $s \cdot f = f[s]$, a *reverse* action: a reverse scan with `init` $z$ returns
    $z_t = f_t(f_{t+1}(\cdots f_T(z)))$. Integer-valued, so every scan method gives
    bit-identical results.

    `scan` and `reduce` check once, before scanning, that `elems` and `init` are
    integers in $[0, K)$ (an entry out of range is an `equinox` runtime error, also
    under `jit`, instead of an index silently clamped).

    **Fields:**

    - `check_range`: whether they check the range (default `True`). `False` is for
      maps in range by construction (such as argmaxes over $K$ candidates): it saves
      a pass over the elements; an entry out of range is then silently clamped.
    """

    action_direction: ClassVar[ActionDirection] = "reverse"
    check_range: bool = eqx.field(default=True, static=True)

    def combine(
        self, earlier: Shaped[Array, " K"], later: Shaped[Array, " K"]
    ) -> Shaped[Array, " K"]:
        return earlier[later]

    def identity(self, like: Shaped[Array, " K"]) -> Shaped[Array, " K"]:
        return jnp.arange(like.shape[-1], dtype=like.dtype)

    def act(self, state: Shaped[Array, "*b"], element: Shaped[Array, " K"]) -> Shaped[Array, "*b"]:
        return element[state]

    def check_inputs(self, xs: Shaped[Array, "..."], init: Shaped[Array, "..."] | None):
        if jnp.ndim(xs) != 2:
            raise ValueError(
                "FiniteFunction `elems` must have shape (T, K): one map [K] -> [K] per "
                f"step; got shape {jnp.shape(xs)}."
            )
        k = xs.shape[-1]
        xs = _check_indices("elems", xs, k, self.check_range)
        if init is not None:
            init = _check_indices("init", init, k, self.check_range)
        return xs, init
