r"""dynamax's LGSSM API on scanalg: its parameter constructors, and its signatures.

`make_lgssm_params` and the `ParamsLGSSM*` constructors build scanalg's
`LGSSMParams`; `as_lgssm_params` converts dynamax's `ParamsLGSSM` (or anything with its
attributes, including parameters given as functions of time) into one; and
`dynamax_signature` makes an `lgssm_*` function accept dynamax's call forms
(`jitter` for the sampler).
"""

import functools
import inspect
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import ArrayLike

from ._params import LGSSMDynamics, LGSSMEmissions, LGSSMInitial, LGSSMParams


def make_lgssm_params(
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
) -> LGSSMParams:
    r"""dynamax's `make_lgssm_params`, returning scanalg's `LGSSMParams`.

    **Arguments:** as for `LGSSMParams` (the same names and order as dynamax); an
    omitted bias or input weight is zero.

    **Returns:**

    An `LGSSMParams`.
    """
    return LGSSMParams(
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
    initial: LGSSMInitial,
    dynamics: LGSSMDynamics,
    emissions: LGSSMEmissions,
) -> LGSSMParams:
    r"""dynamax's `ParamsLGSSM(initial, dynamics, emissions)` constructor, returning
    scanalg's `LGSSMParams` (the parts are `ParamsLGSSMInitial(mean, cov)`,
    `ParamsLGSSMDynamics(weights, bias, input_weights, cov)` and
    `ParamsLGSSMEmissions(weights, bias, input_weights, cov)`, scanalg's `LGSSMInitial`,
    `LGSSMDynamics`, `LGSSMEmissions`). Check types with `scanalg.lgssm.LGSSMParams`."""
    return make_lgssm_params(
        initial.mean,
        initial.cov,
        dynamics.weights,
        dynamics.cov,
        emissions.weights,
        emissions.cov,
        dynamics.bias,
        dynamics.input_weights,
        emissions.bias,
        emissions.input_weights,
    )


class _Initial(NamedTuple):
    mean: Any
    cov: Any


class _Dynamics(NamedTuple):
    weights: Any
    bias: Any
    input_weights: Any
    cov: Any


class _Emissions(NamedTuple):
    weights: Any
    bias: Any
    input_weights: Any
    cov: Any


class _Params(NamedTuple):
    initial: Any
    dynamics: Any
    emissions: Any


_FIELDS = {
    "initial": ("mean", "cov"),
    "dynamics": ("weights", "bias", "input_weights", "cov"),
    "emissions": ("weights", "bias", "input_weights", "cov"),
}
_TYPES = {"initial": _Initial, "dynamics": _Dynamics, "emissions": _Emissions}


def _of_time(x: Any, name: str, num_timesteps: int | None) -> Any:
    """`x`, or the function of time `x` evaluated at `t = 0, ..., T-1` under `vmap`."""
    if x is None or not callable(x) or isinstance(x, jax.Array):
        return x
    if name == "emissions.cov" or name.startswith("initial."):
        raise ValueError(f"`params.{name}` cannot be a function of time (as in dynamax).")
    if num_timesteps is None:
        raise TypeError(
            f"`params.{name}` is a function of time; pass `num_timesteps` to evaluate it."
        )
    return jax.vmap(x)(jnp.arange(num_timesteps))


_BASE_NDIM = {"weights": 2, "bias": 1, "input_weights": 2, "cov": 2}


def _dynamax_layout(values: dict, num_timesteps: int) -> dict:
    """What dynamax reads differently from scanalg, made explicit: a `(T, k)` emission
    covariance (with $k \ne T$) is time-varying and diagonal (scanalg reads every 2-D
    covariance as a full matrix), and entry 0 of a time-varying dynamics parameter is
    never used, so any value there (NaN included) is replaced by zero."""
    values = dict(values)
    cov = values["emissions", "cov"]
    if cov.ndim == 2 and cov.shape[0] == num_timesteps != cov.shape[1]:
        values["emissions", "cov"] = jax.vmap(jnp.diag)(cov)
    for field, ndim in _BASE_NDIM.items():
        x = values["dynamics", field]
        if x is not None and x.ndim == ndim + 1 and x.shape[0] == num_timesteps:
            values["dynamics", field] = x.at[0].set(jnp.where(jnp.isfinite(x[0]), x[0], 0))
    return values


def as_lgssm_params(params: Any, num_timesteps: int | None = None) -> Any:
    r"""Read dynamax's parameters with dynamax's meaning, for the `lgssm_*` functions.

    **Arguments:**

    - `params`: an `LGSSMParams` (returned as it is), a dynamax `ParamsLGSSM`, or any
      object with its attributes (`params.initial.mean`, `params.dynamics.weights`,
      ...). As in dynamax's sequential inference, the dynamics and emission weights,
      biases and input weights and the dynamics covariance may be functions of the time
      index $t$: each is evaluated under `jax.vmap` at $t = 0, \dots, T-1$ into a
      time-varying array (entry $t$ of a dynamics parameter is the step into $z_t$, so
      entry 0 is unused, as for arrays). Arrays of mixed precision are cast to the
      promoted one (dynamax computes with JAX's standard promotion).
    - `num_timesteps`: $T$. Needed for parameters given as functions; with it, the
      layouts dynamax reads differently are made explicit too: an emission covariance
      of shape `(T, k)`, $k \ne T$, is time-varying and diagonal (given to scanalg as
      diagonal matrices), and a non-finite entry 0 of a time-varying dynamics parameter
      (never used, as in dynamax) becomes zero.

    **Returns:**

    An `LGSSMParams` as it is; otherwise the same structure (dynamax's NamedTuples keep
    their types; other objects become NamedTuples) holding arrays of one float dtype.
    Any of these is what the `lgssm_*` functions take.
    """
    if isinstance(params, LGSSMParams):
        return params
    try:
        groups = {group: getattr(params, group) for group in _FIELDS}
    except AttributeError:
        raise TypeError(
            "`params` must be an LGSSMParams or have dynamax's ParamsLGSSM structure "
            "(`initial.mean`, `dynamics.weights`, `emissions.cov`, ...); got "
            f"{type(params).__name__}."
        ) from None
    values = {
        (group, field): _of_time(getattr(obj, field, None), f"{group}.{field}", num_timesteps)
        for group, obj in groups.items()
        for field in _FIELDS[group]
    }
    # dynamax computes with JAX's standard promotion, so parameters of mixed precision
    # mean the promoted one: cast to it here, whatever the promotion setting.
    arrays = [jnp.asarray(x) for x in values.values() if x is not None]
    with jax.numpy_dtype_promotion("standard"):
        dtype = jnp.result_type(*arrays)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    values = {k: None if x is None else jnp.asarray(x).astype(dtype) for k, x in values.items()}
    if num_timesteps is not None:
        values = _dynamax_layout(values, num_timesteps)

    def rebuild(group, obj):
        fields = {field: values[group, field] for field in _FIELDS[group]}
        if hasattr(obj, "_replace"):  # a NamedTuple (dynamax's): keep its type
            return obj._replace(**fields)
        return _TYPES[group](**fields)

    parts = {group: rebuild(group, obj) for group, obj in groups.items()}
    if hasattr(params, "_replace"):
        return params._replace(**parts)
    return _Params(**parts)


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
