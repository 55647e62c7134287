r"""The parameters of a linear-Gaussian state-space model (dynamax's `ParamsLGSSM`
structure), apart from the inference passes so that `_dynamax` can build on them and
`_inference` can apply `_dynamax.dynamax_signature`."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float


class LGSSMInitial(eqx.Module):
    r"""The initial distribution $z_0 \sim \mathcal{N}(\mu_0, \Sigma_0)$.

    **Fields:**

    - `mean`: $\mu_0$, shape `(state_dim,)`.
    - `cov`: $\Sigma_0$, shape `(state_dim, state_dim)`, a covariance matrix.
    """

    mean: Float[Array, " state_dim"]
    cov: Float[Array, "state_dim state_dim"]


class LGSSMDynamics(eqx.Module):
    r"""The dynamics $z_t \mid z_{t-1} \sim \mathcal{N}(F_t z_{t-1} + B_t u_t + b_t, Q_t)$.

    Time-varying arrays have a leading axis of length $T$; entry $t$ is used for the
    transition into $z_t$ (entry 0 is unused). `bias` and `input_weights` may be
    `None` (zero).

    **Fields:** (each optionally with the time axis `T` in front)

    - `weights`: $F_t$, shape `(state_dim, state_dim)`.
    - `bias`: $b_t$, shape `(state_dim,)`, or `None`.
    - `input_weights`: $B_t$, shape `(state_dim, input_dim)`, or `None`.
    - `cov`: $Q_t$, shape `(state_dim, state_dim)`, a covariance matrix.
    """

    weights: Float[Array, "... state_dim state_dim"]
    bias: Float[Array, "... state_dim"] | None
    input_weights: Float[Array, "... state_dim input_dim"] | None
    cov: Float[Array, "... state_dim state_dim"]


class LGSSMEmissions(eqx.Module):
    r"""The emissions $y_t \mid z_t \sim \mathcal{N}(H_t z_t + D_t u_t + d_t, R_t)$.

    Time-varying arrays have a leading axis of length $T$. Every shape is read by its
    rank alone, so no value of $T$ changes its meaning: `cov` is a fixed diagonal
    `(emission_dim,)`, a fixed full matrix `(emission_dim, emission_dim)`, or
    time-varying full matrices `(T, emission_dim, emission_dim)` (a time-varying
    diagonal covariance is given as diagonal matrices, e.g. `jax.vmap(jnp.diag)(d)`).

    **Fields:** (`weights`, `bias`, `input_weights` optionally with the time axis `T`
    in front)

    - `weights`: $H_t$, shape `(emission_dim, state_dim)`.
    - `bias`: $d_t$, shape `(emission_dim,)`, or `None`.
    - `input_weights`: $D_t$, shape `(emission_dim, input_dim)`, or `None`.
    - `cov`: $R_t$, shape `(emission_dim,)`, `(emission_dim, emission_dim)` or
      `(T, emission_dim, emission_dim)`: a covariance matrix, or its diagonal.
    """

    weights: Float[Array, "... emission_dim state_dim"]
    bias: Float[Array, "... emission_dim"] | None
    input_weights: Float[Array, "... emission_dim input_dim"] | None
    cov: Float[Array, "... emission_dim emission_dim"] | Float[Array, " emission_dim"]


class LGSSMParams(eqx.Module):
    r"""Parameters of a linear-Gaussian SSM, with the structure of dynamax's
    `ParamsLGSSM` (`params.initial.mean`, `params.dynamics.weights`, ...).

    Any object with that structure (a dynamax `ParamsLGSSM` included) can be passed
    to the `lgssm_*` functions instead.

    **Arguments:** (all arrays; the optional ones default to zero)

    - `initial_mean`: $\mu_0$, shape `(state_dim,)`.
    - `initial_cov`: $\Sigma_0$, `(state_dim, state_dim)`.
    - `dynamics_weights`: $F$, `([T,] state_dim, state_dim)`.
    - `dynamics_cov`: $Q$, `([T,] state_dim, state_dim)`.
    - `emissions_weights`: $H$, `([T,] emission_dim, state_dim)`.
    - `emissions_cov`: $R$, `([T,] emission_dim, emission_dim)` or `(emission_dim,)`.
    - `dynamics_bias`: $b$, `([T,] state_dim)`.
    - `dynamics_input_weights`: $B$, `([T,] state_dim, input_dim)`.
    - `emissions_bias`: $d$, `([T,] emission_dim)`.
    - `emissions_input_weights`: $D$, `([T,] emission_dim, input_dim)`.

    **Fields:**

    - `initial`: an `LGSSMInitial` (`mean`, `cov`).
    - `dynamics`: an `LGSSMDynamics` (`weights`, `bias`, `input_weights`, `cov`).
    - `emissions`: an `LGSSMEmissions` (`weights`, `bias`, `input_weights`, `cov`).
    """

    initial: LGSSMInitial
    dynamics: LGSSMDynamics
    emissions: LGSSMEmissions

    def __init__(
        self,
        initial_mean: ArrayLike,
        initial_cov: ArrayLike,
        dynamics_weights: ArrayLike,
        dynamics_cov: ArrayLike,
        emissions_weights: ArrayLike,
        emissions_cov: ArrayLike,
        dynamics_bias: ArrayLike | None = None,
        dynamics_input_weights: ArrayLike | None = None,
        emissions_bias: ArrayLike | None = None,
        emissions_input_weights: ArrayLike | None = None,
    ):
        opt = lambda x: None if x is None else jnp.asarray(x)  # noqa: E731
        self.initial = LGSSMInitial(jnp.asarray(initial_mean), jnp.asarray(initial_cov))
        self.dynamics = LGSSMDynamics(
            jnp.asarray(dynamics_weights),
            opt(dynamics_bias),
            opt(dynamics_input_weights),
            jnp.asarray(dynamics_cov),
        )
        self.emissions = LGSSMEmissions(
            jnp.asarray(emissions_weights),
            opt(emissions_bias),
            opt(emissions_input_weights),
            jnp.asarray(emissions_cov),
        )
