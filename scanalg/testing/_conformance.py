"""`check_method`: a fixed battery that every scan method must pass."""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._laws import allclose, error_size, fold, jit_small, tolerance
from .._methods import AbstractScanMethod, as_method, element_like
from .._monoid import AbstractMonoid, supports_direction
from .._scan import reduce, scan
from ..models.hmm import HMMForward
from ..monoids import Affine, FiniteFunction, Masked, MatMul, Segmented, Sum

PyTree = Any

LENGTHS = (0, 1, 2, 7, 17)
"""The sequence lengths of the battery."""

_TRANSFORMED_LENGTH = 7  # the length at which the battery also runs under vmap and grad
_BATCH = 2


class MethodConformanceError(AssertionError):
    """A scan method failed the conformance battery; raised by `check_method`.

    Its message names the method and the failing cases; the same are attributes:
    `method`, and `failures`, a list of `(case, description)` pairs.
    """

    def __init__(self, message: str, *, method, failures):
        super().__init__(message)
        self.method = method
        self.failures = failures


@dataclasses.dataclass(frozen=True, eq=False)
class _Case:
    """One monoid of the battery: how to draw its inputs and read its states out."""

    name: str
    monoid: AbstractMonoid
    draw: Callable[[np.random.Generator, int, Any], tuple[PyTree, PyTree]]
    readout: Callable[[PyTree, PyTree], PyTree]
    grad: bool = False  # also checked under `grad`


def _matrices(rng, n, k):
    """Random orthogonal matrices scaled by about one: long products stay of order one."""
    q, _ = np.linalg.qr(rng.normal(size=(n, k, k)))
    return q * rng.uniform(0.8, 1.2, size=(n, 1, 1))


def _draw_sum(rng, n, dtype):
    xs = {"a": rng.normal(size=n), "b": rng.normal(size=(n, 2))}
    init = {"a": rng.normal(), "b": rng.normal(size=2)}
    return jax.tree.map(lambda x: jnp.asarray(x, dtype), (xs, init))


def _draw_finite_function(rng, n, dtype):
    del dtype
    return jnp.asarray(rng.integers(0, 5, size=(n, 5)), jnp.int32), jnp.asarray(2, jnp.int32)


_HMM_MATRIX = np.array([[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.25, 0.25, 0.5]])


def _draw_hmm(rng, n, dtype):
    log_likelihoods = jnp.asarray(-3 * rng.uniform(size=(n, 3)), dtype)
    return log_likelihoods, jnp.asarray([0.5, 0.3, 0.2], dtype)


def _draw_segmented(rng, n, dtype):
    starts = rng.uniform(size=n) < 0.3
    a = jnp.asarray(_matrices(rng, n, 2), dtype)
    b = jnp.asarray(rng.normal(size=(n, 2)), dtype)
    return (jnp.asarray(starts), (a, b)), jnp.asarray(rng.normal(size=2), dtype)


def _draw_masked(rng, n, dtype):
    valid = rng.uniform(size=n) < 0.6
    garbage = 2 * rng.normal(size=(n, 3, 3))  # invalid values: anything
    values = np.where(valid[:, None, None], _matrices(rng, n, 3), garbage)
    return (jnp.asarray(valid), jnp.asarray(values, dtype)), jnp.asarray(rng.normal(size=3), dtype)


@functools.cache
def _cases(dtype) -> tuple[_Case, ...]:
    dtype = jnp.dtype(dtype)
    reset = jnp.zeros(2, dtype)
    return (
        _Case(
            "Sum() of dicts",
            Sum(),
            _draw_sum,
            lambda s, x: s["a"] * x["a"] + jnp.sum(s["b"] * x["b"]),
            grad=True,
        ),
        _Case(
            "FiniteFunction()",
            FiniteFunction(),
            _draw_finite_function,
            lambda s, f: f[s] + 10 * s,
        ),
        _Case(
            "HMMForward(A), lifted from log-likelihoods",
            HMMForward(jnp.asarray(_HMM_MATRIX, dtype)),
            _draw_hmm,
            lambda p, ll: jnp.log(jnp.sum(p * jnp.exp(ll))),
            grad=True,
        ),
        _Case(
            "Segmented(Affine(), reset=0)",
            Segmented(Affine(), reset=reset),
            _draw_segmented,
            lambda h, x: jnp.sum(h * x[1][1]),
        ),
        _Case(
            "Masked(MatMul())",
            Masked(MatMul()),
            _draw_masked,
            lambda s, x: jnp.where(x[0], jnp.sum(s), 0),
        ),
    )


def _variants(monoid: AbstractMonoid) -> tuple[tuple[str, dict], ...]:
    """Every way the battery calls `scan`/`reduce`: `(label, keyword arguments)`.

    Exclusive scans without `init` are `scan`'s own shift of the inclusive ones (no
    method is involved); with `init` they are the method's, and are checked together
    with `readout` (whose outputs include the states).
    """
    out = [
        (_label(False, False), dict(reverse=False, exclusive=False)),
        (_label(True, False), dict(reverse=True, exclusive=False)),
        ("reduce", dict(reduce=True)),
    ]
    for reverse in (False, True):
        if supports_direction(monoid, reverse):
            kwargs = dict(reverse=reverse, exclusive=False, init=True)
            out.append((_label(reverse, False, "init"), kwargs))
            kwargs = dict(reverse=reverse, exclusive=True, init=True, readout=True)
            out.append((_label(reverse, True, "init and readout"), kwargs))
    return tuple(out)


def _label(reverse: bool, exclusive: bool, extra: str = "") -> str:
    words = ["reverse" if reverse else "forward", "exclusive" if exclusive else "inclusive", "scan"]
    return " ".join(words) + (f" with {extra}" if extra else "")


def _transformed(variants):
    """The variants run under `vmap` and `grad`: the reverse scan, and the last one
    with `init` and `readout`."""
    reverse = [v for v in variants if v[0] == _label(True, False)]
    with_init = [v for v in variants if v[1].get("readout")]
    return tuple(reverse + with_init[-1:])


def _run(case: _Case, variants, run_scan, run_reduce, xs, init) -> dict:
    """All `variants` of one case; elements in normal form (`canonical`)."""
    monoid = case.monoid
    out = {}
    for label, kw in variants:
        if kw.get("reduce"):
            out[label] = monoid.canonical(run_reduce(monoid, xs))
            continue
        readout = _with_state(case.readout) if kw.get("readout") else None
        y = run_scan(
            monoid,
            xs,
            init=init if kw.get("init") else None,
            reverse=kw["reverse"],
            exclusive=kw["exclusive"],
            readout=readout,
        )
        if not kw.get("init"):
            n = jax.tree.leaves(xs)[0].shape[0]
            y = jax.vmap(monoid.canonical)(y) if n else y
        out[label] = y
    return out


def _with_state(readout):
    """The readout, and the state itself (so that a wrong state cannot hide)."""
    return lambda state, x: (state, readout(state, x))


def _fold_scan(monoid, xs, *, init, reverse, exclusive, readout):
    states = fold(monoid, xs, init=init, reverse=reverse, exclusive=exclusive)
    if readout is None:
        return states
    return jax.vmap(readout)(states, xs)


def _fold_reduce(monoid, xs):
    n = jax.tree.leaves(xs)[0].shape[0]
    if n == 0:
        return monoid.identity(element_like(monoid, xs))
    return jax.tree.map(lambda x: x[-1], fold(monoid, xs))


def _loss(outputs: dict) -> jax.Array:
    """A smooth scalar of every floating output, for the gradient checks."""
    total = jnp.zeros(())
    for leaf in jax.tree.leaves(outputs):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            total = total + jnp.sum(jnp.sin(leaf)).astype(total.dtype)
    return total


def _gradient(run, xs, init):
    """The gradient of `_loss(run(xs, init))` with respect to the floating leaves."""
    diff, rest = eqx.partition((xs, init), eqx.is_inexact_array)
    return jax.grad(lambda d: _loss(run(*eqx.combine(d, rest))))(diff)


def _batched(run, grad: bool, xs, init):
    """`run` under `vmap` over a batch, and (if `grad`) the gradient of the
    summed `_loss` of its outputs: one compilation for both transformations."""
    if not grad:
        return jax.vmap(run)(xs, init), None
    diff, rest = eqx.partition((xs, init), eqx.is_inexact_array)

    def loss(d):
        out = jax.vmap(run)(*eqx.combine(d, rest))
        return _loss(out), out

    (_, out), grad = jax.value_and_grad(loss, has_aux=True)(diff)
    return out, grad


def _stack(trees: list) -> PyTree:
    return jax.tree.map(lambda *x: jnp.stack(x), *trees)


@functools.cache
def _reference(case: _Case, n: int, dtype):
    """The fold's answers for one case and length, computed once (op by op: each
    operation is compiled once for all lengths). At the transformed length, also
    those of a batch of sequences, and their gradients."""
    xs, init = case.draw(np.random.default_rng(n), n, dtype)
    variants = _variants(case.monoid)
    expected = _run(case, variants, _fold_scan, _fold_reduce, xs, init)
    batch = None
    if n == _TRANSFORMED_LENGTH:
        sub = functools.partial(_run, case, _transformed(variants), _fold_scan, _fold_reduce)
        draws = [case.draw(np.random.default_rng(100 + i), n, dtype) for i in range(_BATCH)]
        outputs = _stack([sub(*d) for d in draws])
        grads = None
        if case.grad:  # (compiled: differentiating a fold op by op costs more)
            gradient = jit_small(functools.partial(_gradient, sub))
            grads = _stack([gradient(*d) for d in draws])
        batch = (_stack(draws), outputs, grads)
    return xs, init, expected, batch


def _compare(got, expected, rtol, atol) -> str | None:
    """Why `got` differs from `expected` (None if it matches)."""
    if jax.tree.structure(got) != jax.tree.structure(expected):
        return f"structure {jax.tree.structure(got)} instead of {jax.tree.structure(expected)}"
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"{a.dtype.name}{list(a.shape)} instead of {b.dtype.name}{list(b.shape)}"
    if allclose(got, expected, rtol=rtol, atol=atol):
        return None
    return error_size(got, expected)[1].replace("lhs - rhs", "scan - fold")


def check_method(method: "AbstractScanMethod | str", *, dtype: Any = None) -> None:
    r"""Check that a scan method returns what a fold returns, on a fixed battery.

    The battery is run against the fold reference (`scanalg.laws.fold`), for lawful
    monoids that the method cannot tell apart from any other:

    - `Sum` on dict elements (a pytree; its action is lawful in both directions);
    - `MatMul` (not commutative: a product in the wrong order is caught);
    - `FiniteFunction` (integers, compared *bit-exactly*; a reverse action);
    - `HMMForward(A)`, scanned from log-likelihood inputs that its `lift` turns into
      $K \times K$ elements (compared in normal form, `canonical`);
    - `Segmented(Affine(), reset=...)` and `Masked(MatMul())` (flags, restarts and
      invalid elements).

    Each at lengths 0, 1, 2, 7 and 17; forward and reverse, inclusive and exclusive;
    `reduce`; with `init` in every direction the monoid's action allows, and with
    `readout`; all under `jit`, and at length 7 also under `vmap` (a batch of two
    sequences) and `grad` (of a smooth function of the outputs, against the gradient
    of the fold). Inputs are drawn with fixed seeds; each monoid and length compiles
    once per method.

    **Arguments:**

    - `method`: the method to check: an `AbstractScanMethod` instance or a registered
      name.
    - `dtype`: the floating dtype of the inputs; default float64 when
      `jax_enable_x64` is on, else float32. Tolerances follow
      (`scanalg.laws.tolerance`).

    **Raises:**

    `MethodConformanceError` (an `AssertionError`) naming the method and every failing
    case (monoid, length, direction, form, transformation), with the size of the error
    for the first; a method that raises counts as failing, with its exception.
    """
    method = as_method(method)
    dtype = jnp.dtype(jnp.result_type(float) if dtype is None else dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"`dtype` must be a floating dtype, got {dtype.name}.")
    rtol, atol = tolerance(dtype)
    run_scan = functools.partial(scan, method=method)
    run_reduce = functools.partial(reduce, method=method)
    failures: list[tuple[str, str]] = []

    def attempt(where: str, fn: Callable[[], Any], check: Callable[[Any], list], prefix=True):
        try:
            got = fn()
        except Exception as e:  # a method that raises fails the battery
            failures.append((where, f"raised {type(e).__name__}: {e}"))
            return
        for label, why in check(got):
            failures.append((f"{label}, {where}" if prefix else where, why))

    for case in _cases(dtype):
        variants = _variants(case.monoid)
        for n in LENGTHS:
            xs, init, expected, batch = _reference(case, n, dtype)
            run = functools.partial(_run, case, variants, run_scan, run_reduce)
            where = f"length {n}, of {case.name}"

            def compare_all(got, expected=expected):
                return [
                    (label, why)
                    for label in got
                    if (why := _compare(got[label], expected[label], rtol, atol))
                ]

            try:
                compared = compare_all(jit_small(run)(xs, init))
            except Exception:  # find the variants that raise, one by one
                compared = []
                for variant in variants:
                    one = functools.partial(_run, case, (variant,), run_scan, run_reduce)
                    attempt(
                        f"{variant[0]}, {where}, under jit",
                        lambda one=one: jit_small(one)(xs, init),
                        compare_all,
                        prefix=False,
                    )
            failures.extend((f"{label}, {where}, under jit", why) for label, why in compared)
            if batch is None:
                continue
            sub = functools.partial(_run, case, _transformed(variants), run_scan, run_reduce)
            inputs, outputs, grads = batch

            def compare_batch(got, outputs=outputs, grads=grads):
                out, grad = got
                failed = [
                    (f"{label} (a batch of {_BATCH})", why)
                    for label in outputs
                    if (why := _compare(out.get(label), outputs[label], rtol, atol))
                ]
                if grads is not None:
                    why = _compare(grad, grads, 10 * rtol, 10 * atol)
                    if why:
                        failed.append((f"gradient of ({', '.join(outputs)})", why))
                return failed

            how = "vmap and grad" if case.grad else "vmap"
            attempt(
                f"{where}, under {how}",
                lambda sub=sub, case=case, inputs=inputs: jit_small(
                    functools.partial(_batched, sub, case.grad)
                )(*inputs),
                compare_batch,
            )
    if failures:
        raise MethodConformanceError(_report(method, failures), method=method, failures=failures)


def _report(method, failures) -> str:
    first, why = failures[0]
    lines = [
        f"The scan method {method!r} fails {len(failures)} case(s) of the conformance "
        "battery (scanalg.testing.check_method): its results differ from a fold "
        "(scanalg.laws.fold) for lawful monoids.",
        "",
        f"First failing case: {first}:",
        f"    {why}",
    ]
    if len(failures) > 1:
        shown = [f"    {label}" for label, _ in failures[1:13]]
        more = len(failures) - 13
        lines += ["", "Other failing cases:", *shown]
        if more > 0:
            lines.append(f"    ... and {more} more")
    if all("reverse" in label for label, _ in failures):
        lines += [
            "",
            "Every failing case is a reverse scan: a method must call "
            "combine(earlier, later) in time order in reverse scans too "
            "(jax.lax.associative_scan(fn, xs, reverse=True) calls fn(later, earlier)).",
        ]
    return "\n".join(lines)
