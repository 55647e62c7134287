r"""dynamax's LGSSM API on scanalg: its parameter constructors, and its signatures.

`make_lgssm_params` and the `ParamsLGSSM*` constructors build scanalg's
`LGSSMParams`; `as_lgssm_params` converts dynamax's `ParamsLGSSM` (or anything with its
attributes, including parameters given as functions of time) into one; and
`dynamax_signature` makes an `lgssm_*` function accept dynamax's call forms
(`jitter` for the sampler).
"""

import functools
import inspect
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import ArrayLike, Float

from . import _inference  # (a module: `_inference` may apply `dynamax_signature`)


def make_lgssm_params(
    initial_mean: Float[ArrayLike, " state_dim"],
    initial_cov: Float[ArrayLike, "state_dim state_dim"],
    dynamics_weights: Float[ArrayLike, "*ntime state_dim state_dim"],
    dynamics_cov: Float[ArrayLike, "*ntime state_dim state_dim"],
    emissions_weights: Float[ArrayLike, "*ntime emission_dim state_dim"],
    emissions_cov: Float[ArrayLike, "*ntime emission_dim emission_dim"]
    | Float[ArrayLike, "*ntime emission_dim"],
    dynamics_bias: Float[ArrayLike, "*ntime state_dim"] | None = None,
    dynamics_input_weights: Float[ArrayLike, "*ntime state_dim input_dim"] | None = None,
    emissions_bias: Float[ArrayLike, "*ntime emission_dim"] | None = None,
    emissions_input_weights: Float[ArrayLike, "*ntime emission_dim input_dim"] | None = None,
) -> "_inference.LGSSMParams":
    r"""dynamax's `make_lgssm_params`, returning scanalg's `LGSSMParams`.

    **Arguments:** as for `LGSSMParams` (the same names and order as dynamax); an
    omitted bias or input weight is zero.

    **Returns:**

    An `LGSSMParams`.
    """
    return _inference.LGSSMParams(
        initial_mean,
        initial_cov,
        dynamics_weights,
        dynamics_cov,
        emissions_weights,
        emissions_cov,
        dynamics_bias,
        dynamics_input_weights,
        emissions_bias,
        emissions_input_weights,
    )


def ParamsLGSSM(
    initial: "_inference.LGSSMInitial",
    dynamics: "_inference.LGSSMDynamics",
    emissions: "_inference.LGSSMEmissions",
) -> "_inference.LGSSMParams":
    r"""dynamax's `ParamsLGSSM(initial, dynamics, emissions)` constructor, returning
    scanalg's `LGSSMParams` (the parts are `ParamsLGSSMInitial(mean, cov)`,
    `ParamsLGSSMDynamics(weights, bias, input_weights, cov)` and
    `ParamsLGSSMEmissions(weights, bias, input_weights, cov)`, scanalg's `LGSSMInitial`,
    `LGSSMDynamics`, `LGSSMEmissions`). Check types with `scanalg.lgssm.LGSSMParams`."""
    return as_lgssm_params(_Parts(initial, dynamics, emissions))


class _Parts:
    def __init__(self, initial, dynamics, emissions):
        self.initial, self.dynamics, self.emissions = initial, dynamics, emissions


def _of_time(x: Any, name: str, num_timesteps: int | None) -> Any:
    """`x`, or the function of time `x` evaluated at `t = 0, ..., T-1` under `vmap`."""
    if x is None or not callable(x) or isinstance(x, jax.Array):
        return x
    if name == "emissions.cov":
        raise ValueError("`params.emissions.cov` cannot be a function of time (as in dynamax).")
    if num_timesteps is None:
        raise TypeError(
            f"`params.{name}` is a function of time; pass `num_timesteps` to evaluate it."
        )
    return jax.vmap(x)(jnp.arange(num_timesteps))


def as_lgssm_params(params: Any, num_timesteps: int | None = None) -> "_inference.LGSSMParams":
    r"""Read dynamax-style parameters as scanalg's `LGSSMParams`.

    **Arguments:**

    - `params`: an `LGSSMParams` (returned as it is), a dynamax `ParamsLGSSM`, or any
      object with its attributes (`params.initial.mean`, `params.dynamics.weights`,
      ...). As in dynamax's sequential inference, the dynamics and emission weights,
      biases and input weights and the dynamics covariance may be functions of the time
      index $t$: each is evaluated under `jax.vmap` at $t = 0, \dots, T-1$ into a
      time-varying array (entry $t$ of a dynamics parameter is the step into $z_t$, so
      entry 0 is unused, as for arrays).
    - `num_timesteps`: $T$, needed only for parameters given as functions.

    **Returns:**

    An `LGSSMParams`.
    """
    if isinstance(params, _inference.LGSSMParams):
        return params
    try:
        initial, dynamics, emissions = params.initial, params.dynamics, params.emissions
    except AttributeError:
        raise TypeError(
            "`params` must be an LGSSMParams or have dynamax's ParamsLGSSM structure "
            "(`initial.mean`, `dynamics.weights`, `emissions.cov`, ...); got "
            f"{type(params).__name__}."
        ) from None

    def part(obj, group, field):
        return _of_time(getattr(obj, field, None), f"{group}.{field}", num_timesteps)

    parts = dict(
        initial_mean=initial.mean,
        initial_cov=initial.cov,
        dynamics_weights=part(dynamics, "dynamics", "weights"),
        dynamics_cov=part(dynamics, "dynamics", "cov"),
        emissions_weights=part(emissions, "emissions", "weights"),
        emissions_cov=part(emissions, "emissions", "cov"),
        dynamics_bias=part(dynamics, "dynamics", "bias"),
        dynamics_input_weights=part(dynamics, "dynamics", "input_weights"),
        emissions_bias=part(emissions, "emissions", "bias"),
        emissions_input_weights=part(emissions, "emissions", "input_weights"),
    )
    # dynamax computes with JAX's standard promotion, so parameters of mixed precision
    # mean the promoted one: cast to it here, whatever the promotion setting.
    arrays = [jnp.asarray(x) for x in parts.values() if x is not None]
    with jax.numpy_dtype_promotion("standard"):
        dtype = jnp.result_type(*arrays)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    parts = {k: None if x is None else jnp.asarray(x).astype(dtype) for k, x in parts.items()}
    return _inference.LGSSMParams(**parts)


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def dynamax_signature(fn=None, *, jitter: bool = False):
    r"""Give a scanalg LGSSM function dynamax's signature, keeping scanalg's.

    The wrapped function takes `[key,] params, emissions, inputs=None` and keyword-only
    options (`method`, `num_samples`, ...). The result converts `params` with
    `as_lgssm_params` (dynamax's `ParamsLGSSM`, parameters as functions of time), and
    with `jitter=True` (for the sampler) accepts dynamax's `jitter` after `inputs`,
    positionally or by keyword: a variance added to the diagonal of every backward
    conditional covariance before sampling. It is passed on as the keyword `jitter=`;
    if the wrapped function has no such keyword, only `jitter=0` is accepted.

    Use as `@dynamax_signature` or `@dynamax_signature(jitter=True)`, outermost (above
    any `jit`), or call it on a function.
    """
    if fn is None:
        return functools.partial(dynamax_signature, jitter=jitter)
    if getattr(fn, "__dynamax_signature__", False):
        return fn  # (already wrapped)
    name = getattr(fn, "__name__", repr(fn))
    inner = inspect.signature(fn)
    head = [p for p in inner.parameters.values() if p.kind in _POSITIONAL]
    options = [
        p
        for p in inner.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "jitter"
    ]
    if [p.name for p in head][-3:] != ["params", "emissions", "inputs"]:
        raise TypeError(
            "dynamax_signature needs a function taking `params, emissions, inputs` "
            f"positionally; {name} takes {[p.name for p in head]}."
        )
    passes_jitter = "jitter" in inner.parameters
    P = inspect.Parameter
    positional = list(head)
    if jitter:
        positional.append(P("jitter", P.POSITIONAL_OR_KEYWORD, default=0.0))
    outer = inner.replace(parameters=positional + options)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        given = outer.bind(*args, **kwargs).arguments
        emissions = given["emissions"]
        num_timesteps = jnp.shape(emissions)[0] if jnp.ndim(emissions) else None
        values = [given.get(p.name, p.default) for p in head]
        values[-3] = as_lgssm_params(values[-3], num_timesteps)
        extra = {p.name: given[p.name] for p in options if p.name in given}
        value = given.get("jitter", 0.0)
        if passes_jitter and "jitter" in given:
            extra["jitter"] = 0.0 if value is None else value
        elif not (value is None or (isinstance(value, int | float) and value == 0)):
            raise TypeError(f"{name} takes no `jitter`; got jitter={value!r}.")
        return fn(*values, **extra)

    wrapper.__signature__ = outer
    wrapper.__dynamax_signature__ = True
    return wrapper
