"""Small dense linear algebra shared by the model families (no family owns it)."""

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float


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
    `psd_cholesky` for why batched LAPACK calls are avoided); by LAPACK otherwise.
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


def psd_cholesky(S: Float[Array, "n n"]) -> tuple[Float[Array, "n n"], Bool[Array, ""]]:
    r"""A lower-triangular $L$ with $L L^\top = S$ for a symmetric positive
    *semi*-definite $S$, and whether $S$ is not positive semi-definite.

    The Cholesky recursion, except that a pivot that is zero to working precision
    (at most $4(n+1)\,\epsilon\, S_{jj}$, the rounding of a Schur pivot) gives a zero
    column of $L$ instead of a division by zero: singular covariances factorise, and
    $L$ is a square root usable for sampling. The flag is true when a pivot is
    negative beyond that tolerance, or a zero pivot has a column that is not zero
    (then $S$ has a negative eigenvalue). Nothing is NaN for finite $S$.

    A loop over the columns in plain array operations (no LAPACK): under `vmap` on
    CPU, jaxlib's batched LAPACK kernels split the batch over XLA's intra-op thread
    pool and block waiting for it; two such calls running at once can occupy every
    thread of a small pool and wait for each other for ever (seen on 2 cores with
    jaxlib 0.10, in `lapack_strsm_ffi`).
    """
    n = S.shape[-1]
    tol = (4 * (n + 1) * jnp.finfo(S.dtype).eps) * jnp.abs(jnp.diagonal(S))
    # A loop, not unrolled: compile time stays flat in n (these run under `vmap` or
    # once per call, never once per time step inside a loop).
    init = (S, jnp.zeros_like(S), jnp.zeros((), bool))
    _, L, bad = jax.lax.fori_loop(0, n, functools.partial(_cholesky_column, tol), init)
    return L, bad


# (The loop bodies are module-level functions bound with `functools.partial`, not
# closures, so that they are not new functions at every call: see
# `scanalg._methods._base.emitter`.)


def _cholesky_column(tol, j, carry):
    """Column `j` of `psd_cholesky`; `A` is the Schur complement after the columns
    before `j`."""
    A, L, bad = carry
    rows = jnp.arange(A.shape[-1])
    col = A[:, j]
    pivot = col[j]
    zero = pivot <= tol[j]
    below = rows > j
    # PSD needs col_i^2 <= A_ii * pivot: with a zero pivot, a zero column.
    loose = below & (col * col > 4 * (jnp.abs(jnp.diagonal(A)) + tol) * tol[j])
    bad = bad | (pivot < -tol[j]) | (zero & jnp.any(loose))
    d = jnp.sqrt(jnp.where(zero, 1, pivot))
    lcol = jnp.where(zero | (rows < j), 0, jnp.where(below, col / d, d))
    A = A - lcol[:, None] * lcol[None, :]
    return A, jnp.where((rows == j)[None, :], lcol[:, None], L), bad


def lower_inverse(L: Float[Array, "n n"]) -> Float[Array, "n n"]:
    r"""$L^{-1}$ of a lower-triangular $L$: forward substitution, a loop over the rows
    for $n \le 8$ (see `psd_cholesky`), LAPACK beyond."""
    n = L.shape[-1]
    eye = eye_like(L)
    if n > _SMALL:
        return jax.lax.linalg.triangular_solve(L, eye, left_side=True, lower=True)

    return jax.lax.fori_loop(0, n, functools.partial(_inverse_row, L, eye), jnp.zeros_like(L))


def _inverse_row(L, eye, i, X):
    """Row `i` of `lower_inverse`; `X` holds the rows before `i`, zeros below."""
    return X.at[i].set((eye[i] - L[i] @ X) / L[i, i])


def psd_inv_logdet(S: Float[Array, "k k"]) -> tuple[Float[Array, "k k"], Float[Array, ""]]:
    r"""$S^{-1}$ (symmetrised) and $\log\det S$ of a positive semi-definite $S$, by
    `psd_cholesky`.

    An explicit inverse, so that its uses are matrix products: with a fixed $S$ and
    batched right-hand sides this is one factorisation instead of one solve per step.

    For a singular $S$ the log-determinant is $-\infty$ and the inverse is a
    generalised one, $X$ with $S X S = S$: a zero column $j$ of the factor $L$ is
    replaced by the unit vector $e_j$ before inverting. Then $C X S = C$ for every
    $C$ whose rows lie in the range of $S$ (such as a cross-covariance
    $\mathrm{Cov}(u, v)$ against $S = \mathrm{Cov}(v)$), so a regression
    $C S^{-1}$ stays exact where $S$ is singular.
    """
    L, _ = psd_cholesky(S)
    d = jnp.diagonal(L)
    zero = d == 0
    L_inv = lower_inverse(L + jnp.diag(zero.astype(L.dtype)))
    logdet = 2 * jnp.sum(jnp.where(zero, -jnp.inf, jnp.log(jnp.where(zero, 1, d))))
    return symmetrize(L_inv.T @ L_inv), logdet


def gaussian_log_density(
    quad: Float[Array, ""], logdet: Float[Array, ""], dim: Array
) -> Float[Array, ""]:
    r"""$\log \mathcal{N}(e \mid 0, S) = -\tfrac12\big(q + \log\det S + d \log 2\pi\big)$
    from the quadratic form $q = e^\top S^{-1} e$ (however it was computed), with $d$ =
    `dim` (the number of components that count: an unobserved component carries
    $e_i = 0$, a unit variance and no correlation, and is left out of $d$)."""
    log2pi = jnp.log(2 * jnp.pi).astype(quad.dtype)
    return -0.5 * (quad + logdet + jnp.asarray(dim).astype(quad.dtype) * log2pi)
