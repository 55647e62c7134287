"""DiagonalAffine: the diagonal linear recurrence h_t = a_t * h_{t-1} + b_t."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import all_methods, core_methods, method_ids, tree_allclose

import scanalg
from scanalg import strategies as S
from scanalg.laws import check_laws
from scanalg.monoids import DiagonalAffine, Dual

N = 4


def _loop(a, b, h0):
    """The reference: a hand-written `lax.scan` of the recurrence."""

    def step(h, ab):
        h = ab[0] * h + ab[1]
        return h, h

    return jax.lax.scan(step, h0, (a, b))[1]


@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_laws(dtype):
    check_laws(
        DiagonalAffine(),
        S.diagonal_affine_elements(N, dtype),
        states=S.diagonal_affine_states(N, dtype),
        methods=core_methods,
        max_examples=10,
        max_length=5,
    )


def _data(dtype, n=37, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n, N)
    if np.dtype(dtype).kind == "c":
        radius = rng.uniform(0.5, 0.999, shape)
        a = radius * np.exp(1j * rng.uniform(-np.pi, np.pi, shape))
        b = rng.normal(size=shape) + 1j * rng.normal(size=shape)
        h0 = rng.normal(size=N) + 1j * rng.normal(size=N)
    else:
        a = rng.uniform(-0.999, 0.999, shape)
        b = rng.normal(size=shape)
        h0 = rng.normal(size=N)
    return (jnp.asarray(a, dtype), jnp.asarray(b, dtype), jnp.asarray(h0, dtype))


@pytest.mark.parametrize("method", all_methods, ids=method_ids)
@pytest.mark.parametrize("dtype", ["float32", "complex128"])
def test_matches_loop(dtype, method):
    a, b, h0 = _data(dtype)
    want = _loop(a, b, h0)
    got = scanalg.scan(DiagonalAffine(), (a, b), init=h0, method=method)
    assert got.dtype == want.dtype
    tol = 1e-5 if dtype == "float32" else 1e-12
    assert tree_allclose(got, want, rtol=tol, atol=tol)
    # Without init, the prefix maps applied to h0 give the same states.
    pa, pb = scanalg.scan(DiagonalAffine(), (a, b), method=method)
    assert tree_allclose(pa * h0[None] + pb, want, rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize("method", core_methods, ids=repr)
@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_gradient_matches_loop(dtype, method):
    a, b, h0 = _data(dtype, n=23, seed=1)
    w = jnp.asarray(np.random.default_rng(2).normal(size=(23, N)))

    def loss(run, a, b, h0):
        h = run(a, b, h0)
        return jnp.sum(w * jnp.real(h) + jnp.abs(h) ** 2 / 7)

    def scanned(a, b, h0):
        return scanalg.scan(DiagonalAffine(), (a, b), init=h0, method=method)

    def prefixes(a, b, h0):  # through combine rather than act
        pa, pb = scanalg.scan(DiagonalAffine(), (a, b), method=method)
        return pa * h0[None] + pb

    want = jax.grad(loss, argnums=(1, 2, 3))(_loop, a, b, h0)
    for run in (scanned, prefixes):
        got = jax.grad(loss, argnums=(1, 2, 3))(run, a, b, h0)
        assert tree_allclose(got, want, rtol=1e-9, atol=1e-9)
    assert all(np.all(np.isfinite(g)) for g in want)


def test_real_decay_complex_input_and_shapes():
    # A real decay with a complex input is allowed (b complex, a real).
    a = jnp.full((5, 2), 0.5, jnp.float32)
    b = jnp.ones((5, 2), jnp.complex64) * (1 + 1j)
    h = scanalg.scan(DiagonalAffine(), (a, b), init=jnp.zeros(2, jnp.complex64))
    np.testing.assert_allclose(h[-1], (1 + 1j) * (2 - 0.5**4), rtol=1e-6)
    # Any elementwise shape works, and T = 0 and T = 1.
    a, b = jnp.full((3, 2, 2), 2.0), jnp.ones((3, 2, 2))
    np.testing.assert_allclose(
        scanalg.scan(DiagonalAffine(), (a, b), init=jnp.zeros((2, 2)))[:, 0, 0], [1, 3, 7]
    )
    assert scanalg.scan(DiagonalAffine(), (a[:0], b[:0]), init=jnp.zeros((2, 2))).shape == (0, 2, 2)
    ident = DiagonalAffine().identity((a[0], b[0]))
    assert tree_allclose(ident, (jnp.ones((2, 2)), jnp.zeros((2, 2))))


def test_bad_dtypes_and_direction():
    a = jnp.ones((3, 2), jnp.complex64)
    b = jnp.ones((3, 2), jnp.float32)
    with pytest.raises(TypeError, match="DiagonalAffine"):
        scanalg.scan(DiagonalAffine(), (a, b))
    with pytest.raises(TypeError, match="forward"):
        scanalg.scan(DiagonalAffine(), (b, b), init=jnp.zeros(2), reverse=True)
    # ... a reverse recurrence is a reverse scan of the dual.
    h = scanalg.scan(Dual(DiagonalAffine()), (b, b), init=jnp.zeros(2, jnp.float32), reverse=True)
    np.testing.assert_allclose(h[:, 0], [3, 2, 1])
    # `init` of another dtype than `b` is named (no implicit promotion in the scan).
    with pytest.raises(TypeError, match=r"DiagonalAffine `init` must have the dtype of `b`"):
        scanalg.scan(DiagonalAffine(), (b, b), init=jnp.zeros(2, jnp.float64))
