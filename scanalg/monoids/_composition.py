"""Finite maps under composition."""

from typing import ClassVar

import jax.numpy as jnp
from jaxtyping import Array, Shaped

from .._monoid import AbstractMonoid, ActionDirection


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
    """

    action_direction: ClassVar[ActionDirection] = "reverse"

    def combine(
        self, earlier: Shaped[Array, " K"], later: Shaped[Array, " K"]
    ) -> Shaped[Array, " K"]:
        return earlier[later]

    def identity(self, like: Shaped[Array, " K"]) -> Shaped[Array, " K"]:
        return jnp.arange(like.shape[-1], dtype=like.dtype)

    def act(self, state: Shaped[Array, "*b"], element: Shaped[Array, " K"]) -> Shaped[Array, "*b"]:
        return element[state]
