r"""dynamax's HMM signatures: `dynamax_signature` makes a scanalg HMM function accept
every dynamax call form (`initial_distribution`, `transition_fn`,
`compute_trans_probs`, positional order).

*Time-varying transitions from a function.* dynamax calls `transition_fn(t)` inside
its loop, one step at a time. Here it is evaluated once, under `jax.vmap` over
$t = 0, \dots, T-2$, into the `(T-1, K, K)` array a time-varying `transition_matrix`
would be: the cost is that of passing that array ($O(TK^2)$ memory, one vectorised
call), and the function must be traceable in $t$ (as in dynamax, whose loop traces it
too).

(Apart from the inference passes, so that `_inference` can apply it to the public
functions and `_dynamax` can build on them.)
"""

import functools
import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

Transitions = (
    Float[ArrayLike, "num_states num_states"]
    | Float[ArrayLike, "num_timesteps_minus_1 num_states num_states"]
)
TransitionFn = Callable[[Int[Array, ""]], Float[Array, "num_states num_states"]]

# scanalg's argument names -> dynamax's (the first is what dynamax's positional slot is
# called; both names are accepted by keyword).
_DYNAMAX_NAMES = {"initial_probs": "initial_distribution"}


# --------------------------------------------------------------------------------------
# Transition matrices from `transition_matrix` or `transition_fn`.
# --------------------------------------------------------------------------------------


def transitions(
    transition_matrix: ArrayLike | None,
    transition_fn: TransitionFn | None,
    num_timesteps: int,
    num_states: int,
) -> ArrayLike:
    r"""The transition matrix given as dynamax allows: an array, or a function of time.

    **Arguments:**

    - `transition_matrix`: `(K, K)`, `(T-1, K, K)`, or `None`.
    - `transition_fn`: `None`, or a function of an integer time index $t$ returning
      $A_t$, shape `(K, K)`, the step from $t$ to $t+1$.
    - `num_timesteps`, `num_states`: $T$ and $K$.

    **Returns:**

    `transition_matrix` itself (its shape is checked by the function it is passed to,
    which names the expected shapes), or `transition_fn` evaluated under `jax.vmap` at
    $t = 0, \dots, T-2$, shape `(T-1, K, K)`. Exactly one of the two must be given
    (`ValueError` otherwise, and for a function returning the wrong shape).
    """
    if transition_matrix is not None and transition_fn is not None:
        raise ValueError(
            "Give either `transition_matrix` or `transition_fn`, not both (dynamax would "
            "silently use `transition_fn`)."
        )
    if transition_fn is None:
        if transition_matrix is None:
            raise ValueError(
                "Either `transition_matrix` (shape (K, K) or (T-1, K, K)) or "
                "`transition_fn` (t -> (K, K) matrix) must be given; both are None."
            )
        return transition_matrix
    if not callable(transition_fn):
        raise TypeError(f"`transition_fn` must be callable, got {type(transition_fn).__name__}.")
    times = jnp.arange(max(num_timesteps - 1, 0))
    want = (num_states, num_states)
    shape = jax.eval_shape(transition_fn, jax.ShapeDtypeStruct((), times.dtype))
    if not hasattr(shape, "shape") or tuple(shape.shape) != want:
        got = getattr(shape, "shape", type(shape).__name__)
        raise ValueError(
            f"`transition_fn(t)` must return a (K, K) = {want} transition matrix for "
            f"`log_likelihoods` with K = {num_states} states; got {got}."
        )
    return jax.vmap(transition_fn)(times)


def num_timesteps_and_states(log_likelihoods) -> tuple[int, int]:
    shape = jnp.shape(log_likelihoods)
    if len(shape) != 2:
        raise ValueError(
            "`log_likelihoods` must have shape (T, K) = (num_timesteps, num_states); got "
            f"shape {shape}."
        )
    return shape


# --------------------------------------------------------------------------------------
# The decorator.
# --------------------------------------------------------------------------------------

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def dynamax_signature(fn=None, *, compute_trans_probs: bool = False):
    r"""Give a scanalg HMM function dynamax's signature, keeping scanalg's.

    The wrapped function takes scanalg's arguments: positional
    `[key,] initial_probs, transition_matrix, log_likelihoods[, ...]` and keyword-only
    options (`lengths`, `method`, `num_samples`, ...). The result accepts, in addition,
    dynamax's forms of the same call:

    - `initial_distribution` (dynamax's name of the first probability argument;
      `initial_probs` still works as a keyword, not both);
    - `transition_fn` after the positional arguments (positionally or by keyword):
      a function of the time index giving $A_t$; it is evaluated under `jax.vmap` into
      a `(T-1, K, K)` array (see `transitions`). `transition_matrix` may then be `None`;
      giving both, or neither, is a `ValueError`;
    - with `compute_trans_probs=True` (for smoothers): a `compute_trans_probs`
      argument after `transition_fn`, default `True`; `False` returns
      `trans_probs=None`, as dynamax does.

    Use as `@dynamax_signature` or `@dynamax_signature(compute_trans_probs=True)`,
    outermost (above any `jit`), or call it on a function.
    """
    if fn is None:
        return functools.partial(dynamax_signature, compute_trans_probs=compute_trans_probs)
    inner = inspect.signature(fn)
    if getattr(fn, "__dynamax_signature__", False) or "transition_fn" in inner.parameters:
        return fn  # (already wrapped)
    name = getattr(fn, "__name__", repr(fn))
    head = [p for p in inner.parameters.values() if p.kind in _POSITIONAL]
    options = [p for p in inner.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    inner_names = [p.name for p in head]
    if "log_likelihoods" not in inner_names or "transition_matrix" not in inner_names:
        raise TypeError(
            f"dynamax_signature needs a function taking `transition_matrix` and "
            f"`log_likelihoods`; {name} takes {inner_names}."
        )
    P = inspect.Parameter
    positional = [p.replace(name=_DYNAMAX_NAMES.get(p.name, p.name)) for p in head]
    positional = [
        p.replace(annotation=p.annotation | None) if p.name == "transition_matrix" else p
        for p in positional
    ]
    positional.append(
        P("transition_fn", P.POSITIONAL_OR_KEYWORD, default=None, annotation=TransitionFn | None)
    )
    if compute_trans_probs:
        positional.append(
            P("compute_trans_probs", P.POSITIONAL_OR_KEYWORD, default=True, annotation=bool)
        )
    aliases = [
        P(alias, P.KEYWORD_ONLY, default=None) for alias in _DYNAMAX_NAMES if alias in inner_names
    ]
    outer = inner.replace(parameters=positional + aliases + options)
    call_signature = outer.replace(parameters=positional + options)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        for scanalg_name, dynamax_name in _DYNAMAX_NAMES.items():
            if scanalg_name in kwargs and scanalg_name in inner_names:
                if dynamax_name in kwargs:
                    raise TypeError(
                        f"Got both `{dynamax_name}` and `{scanalg_name}` (the same argument)."
                    )
                kwargs[dynamax_name] = kwargs.pop(scanalg_name)
        given = call_signature.bind(*args, **kwargs).arguments
        num_timesteps, num_states = num_timesteps_and_states(given["log_likelihoods"])
        matrix = transitions(
            given["transition_matrix"], given.get("transition_fn"), num_timesteps, num_states
        )
        values = [
            matrix if p.name == "transition_matrix" else given.get(p.name, p.default)
            for p in positional[: len(head)]
        ]
        out = fn(*values, **{p.name: given[p.name] for p in options if p.name in given})
        if compute_trans_probs and not given.get("compute_trans_probs", True):
            out = out._replace(trans_probs=None)
        return out

    wrapper.__signature__ = outer
    wrapper.__dynamax_signature__ = True
    return wrapper
