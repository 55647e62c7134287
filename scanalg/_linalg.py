"""Small dense linear algebra shared by the model families (no family owns it)."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def symmetrize(x: Float[Array, "*b n n"]) -> Float[Array, "*b n n"]:
    r"""The symmetric part $\tfrac12 (X + X^\top)$ of a (batch of) square matrices."""
    return 0.5 * (x + jnp.swapaxes(x, -1, -2))


def eye_like(x: Float[Array, "n n"]) -> Float[Array, "n n"]:
    return jnp.eye(x.shape[-1], dtype=x.dtype)


# Small dense linear algebra. State dimensions are usually tiny (2-8): there a
# matrix product written as a broadcast multiply-and-sum, and an inverse by
# unrolled Gauss-Jordan elimination, fuse into a few XLA kernels, where BLAS and
# LAPACK calls would each cost a kernel launch inside every scan step (about 3x
# slower per Kalman step on CPU). Larger matrices use BLAS / LAPACK.
_SMALL = 8


def mm(a: Float[Array, "n m"], b: Float[Array, "m ..."]) -> Float[Array, "n ..."]:
    """`a @ b` for a matrix `a` and a matrix or vector `b`, as one fusible
    multiply-and-sum for small matrices (for `act` inside loops; under `vmap` a batched
    `@` is better)."""
    if max(a.shape) > _SMALL:
        return a @ b
    if b.ndim == 1:
        return jnp.sum(a * b[None, :], axis=1)
    return jnp.sum(a[:, :, None] * b[None, :, :], axis=1)


def inv_logdet(M: Float[Array, "n n"], fused: bool) -> tuple[Float[Array, "n n"], Float[Array, ""]]:
    r"""$M^{-1}$ and $\log\lvert\det M\rvert$, with partial pivoting.

    By Gauss-Jordan elimination unrolled over the $n$ pivots, for $n \le 8$ (see
    `cholesky` for why batched LAPACK calls are avoided); by LAPACK otherwise.
    `fused=True` is for one matrix inside a loop (pivot rows swapped by indexing);
    `fused=False` for batches under `vmap`, where indexing would become gathers, so
    rows are swapped by selects.
    """
    n = M.shape[-1]
    if n > _SMALL:
        lu, _, perm = jax.lax.linalg.lu(M)
        eye = eye_like(M)
        inv = jax.lax.linalg.triangular_solve(
            lu, eye[perm], left_side=True, lower=True, unit_diagonal=True
        )
        inv = jax.lax.linalg.triangular_solve(lu, inv, left_side=True, lower=False)
        return inv, jnp.sum(jnp.log(jnp.abs(jnp.diagonal(lu))))
    aug = jnp.concatenate([M, eye_like(M)], axis=1)  # [M | I] -> [I | M^{-1}]
    rows = jnp.arange(n)
    logdet = jnp.zeros((), M.dtype)
    for k in range(n):
        piv = jnp.argmax(jnp.where(rows >= k, jnp.abs(aug[:, k]), -1))
        if fused:
            aug = aug[jnp.where(rows == k, piv, jnp.where(rows == piv, k, rows))]
        else:
            is_piv = (rows == piv)[:, None]
            row_piv = jnp.sum(jnp.where(is_piv, aug, 0), axis=0)
            aug = jnp.where((rows == k)[:, None], row_piv, jnp.where(is_piv, aug[k], aug))
        pivot_row = aug[k] / aug[k, k]
        logdet = logdet + jnp.log(jnp.abs(aug[k, k]))
        factors = jnp.where(rows == k, 0, aug[:, k])
        aug = aug - factors[:, None] * pivot_row[None, :]
        aug = jnp.where((rows == k)[:, None], pivot_row[None, :], aug)
    return aug[:, n:], logdet


def cholesky(S: Float[Array, "n n"]) -> Float[Array, "n n"]:
    r"""The lower Cholesky factor $L L^\top = S$ (NaN if $S$ is not positive definite).

    A loop over the columns in plain array operations for $n \le 8$; LAPACK beyond.
    Under `vmap` on CPU the batched LAPACK kernels split the batch over XLA's
    intra-op thread pool and block waiting for it; two such calls running at once
    can occupy every thread of a small pool and wait for each other for ever (seen
    on 2 cores with jaxlib 0.10, in `lapack_strsm_ffi`). Small matrices never call
    them.
    """
    n = S.shape[-1]
    if n > _SMALL:
        return jnp.linalg.cholesky(S)
    rows = jnp.arange(n)

    def column(j, L):  # L holds columns < j; row j of L is zero from column j on
        row = L[j]
        d = jnp.sqrt(S[j, j] - jnp.sum(row**2))
        below = (S[:, j] - L @ row) / d
        return L.at[:, j].set(jnp.where(rows > j, below, jnp.where(rows == j, d, 0)))

    # A loop, not unrolled: compile time stays flat in n (these run under `vmap` or
    # once per call, never once per time step inside a loop).
    return jax.lax.fori_loop(0, n, column, jnp.zeros_like(S))


def lower_inverse(L: Float[Array, "n n"]) -> Float[Array, "n n"]:
    r"""$L^{-1}$ of a lower-triangular $L$: forward substitution, a loop over the rows
    for $n \le 8$ (see `cholesky`), LAPACK beyond."""
    n = L.shape[-1]
    eye = eye_like(L)
    if n > _SMALL:
        return jax.lax.linalg.triangular_solve(L, eye, left_side=True, lower=True)

    def row(i, X):  # X holds rows < i of the inverse, zeros below
        return X.at[i].set((eye[i] - L[i] @ X) / L[i, i])

    return jax.lax.fori_loop(0, n, row, jnp.zeros_like(L))


def psd_inv_logdet(S: Float[Array, "k k"]) -> tuple[Float[Array, "k k"], Float[Array, ""]]:
    r"""$S^{-1}$ (symmetrised) and $\log\det S$ of a positive definite $S$, by Cholesky.

    An explicit inverse, so that its uses are matrix products: with a fixed $S$ and
    batched right-hand sides this is one factorisation instead of one solve per step.
    """
    L = cholesky(S)
    L_inv = lower_inverse(L)
    return symmetrize(L_inv.T @ L_inv), 2 * jnp.sum(jnp.log(jnp.diagonal(L)))
