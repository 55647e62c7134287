"""Linear-chain CRFs and the HMM semiring extras against brute-force enumeration of all
K^T paths (float64), on every scan method; ragged batches; the sampler by a chi-square
test; gradients; float32 on long chains; bad input.

Every method runs one jitted function that computes every output of a problem at once,
so each (method, potential shape) compiles once."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import scanalg
from scanalg import crf, semirings as sr

T, K = 4, 3
PATHS = np.array(list(itertools.product(range(K), repeat=T)))  # (K^T, T)
NUM_PATHS = K**T
EXTRA = 2  # kbest asks for K^T + EXTRA paths: the extra ones are -inf
NUM_SAMPLES = 2000
# Every method (Auto resolves to Sequential on a CPU at this length, but is traced
# through its own resolution). Blocked with blocks of two: several blocks and a
# padded last one at T = 4.
METHODS = (scanalg.Sequential(), scanalg.Parallel(), scanalg.Blocked(block_size=2), scanalg.Auto())
METHOD_IDS = [repr(m) for m in METHODS]


# --------------------------------------------------------------------------- reference


def scores_of(psi, u, paths):
    """Path scores s(z) in NumPy (float64), -inf allowed."""
    psi, u = np.asarray(psi, float), np.asarray(u, float)
    steps = psi if psi.ndim == 3 else np.broadcast_to(psi, (u.shape[0] - 1, *psi.shape))
    t = np.arange(u.shape[0])
    total = u[t, paths].sum(axis=1)
    for s in range(u.shape[0] - 1):
        total = total + steps[s][paths[:, s], paths[:, s + 1]]
    return total


def brute(psi, u):
    """Everything by enumeration: logZ, marginals, entropy, the ranked paths."""
    t_len, k = np.shape(u)
    paths = np.array(list(itertools.product(range(k), repeat=t_len)))
    s = scores_of(psi, u, paths)
    top = s.max()
    log_z = -np.inf if top == -np.inf else top + np.log(np.exp(s - top).sum())
    p = np.zeros_like(s) if log_z == -np.inf else np.exp(s - log_z)
    unary = np.stack([[p[paths[:, t] == j].sum() for j in range(k)] for t in range(t_len)])
    pairwise = np.zeros((t_len - 1, k, k))
    for t in range(t_len - 1):
        np.add.at(pairwise[t], (paths[:, t], paths[:, t + 1]), p)
    live = p > 0
    entropy = -(p[live] * np.log(p[live])).sum()
    # Best first; ties: reverse lexicographic order (z_T first, then z_{T-1}, ...).
    order = np.lexsort((*paths.T, -s))
    return dict(
        log_z=log_z,
        unary=unary,
        pairwise=pairwise if np.ndim(psi) == 3 else pairwise.sum(0),
        entropy=entropy,
        ranked_scores=s[order],
        ranked_paths=paths[order],
        probs=p,
    )


def _problem(kind: str, fixed: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (K, K) if fixed else (T - 1, K, K)
    if kind == "ties":  # small integers: many exactly tied paths
        psi = rng.integers(-1, 2, size=shape).astype(float)
        u = rng.integers(-1, 2, size=(T, K)).astype(float)
    else:
        psi, u = rng.normal(size=shape), rng.normal(size=(T, K))
    if kind in ("ties", "zeros", "impossible"):
        psi[..., 0, 2] = -np.inf  # a forbidden transition
        u[1, 1] = -np.inf  # a forbidden state
    if kind == "impossible":
        u[2, :] = -np.inf  # no path at all
    return jnp.asarray(psi), jnp.asarray(u)


KINDS = ("dense", "zeros", "ties", "impossible")
PROBLEMS = [(kind, fixed) for kind in KINDS for fixed in (False, True)]
PROBLEM_IDS = [f"{kind}-{'fixed' if fixed else 'tv'}" for kind, fixed in PROBLEMS]


@functools.cache
def values(method):
    """Every output of one problem, jitted once per method (and potential shape)."""

    @jax.jit
    def run(psi, u, key):
        m = method
        best = crf.argmax(psi, u, method=m)
        return dict(
            log_z=crf.log_partition(psi, u, method=m),
            entropy=crf.entropy(psi, u, method=m),
            best=best.scores,
            best_path=best.paths,
            kbest=crf.kbest(psi, u, k=NUM_PATHS + EXTRA, method=m),
            marginals=crf.marginals(psi, u, method=m, by="backward"),
            marginals_grad=crf.marginals(psi, u, method=m),
            samples=crf.sample(key, psi, u, num_samples=NUM_SAMPLES, method=m),
        )

    return run


def _objective(psi, u, method):
    """A combination of every real-valued output (one backward pass checks the
    gradients of all of them), and the two best paths."""
    top = crf.kbest(psi, u, k=2, method=method)
    total = (
        crf.log_partition(psi, u, method=method)
        + 0.5 * crf.entropy(psi, u, method=method)
        + 0.25 * crf.argmax(psi, u, method=method).scores
        + 0.125 * jnp.sum(top.scores[:2])
    )
    return total, top


@functools.cache
def gradients(method):
    return jax.jit(jax.value_and_grad(functools.partial(_objective, method=method), (0, 1), True))


@functools.cache
def results(method_index: int, problem_index: int):
    kind, fixed = PROBLEMS[problem_index]
    psi, u = _problem(kind, fixed)
    out = values(METHODS[method_index])(psi, u, jax.random.PRNGKey(7))
    return psi, u, jax.tree.map(np.asarray, out)


# Time-varying potentials on every method; fixed ones (the probability-space fast path
# of `Log` on Sequential) on Sequential and Parallel.
CASES = [
    (m, p) for m in range(len(METHODS)) for p in range(len(PROBLEMS)) if not PROBLEMS[p][1] or m < 2
]
CASE_IDS = [f"{METHOD_IDS[m]}-{PROBLEM_IDS[p]}" for m, p in CASES]


# ------------------------------------------------------------------------ correctness


@pytest.mark.parametrize("m, p", CASES, ids=CASE_IDS)
def test_against_brute_force(m, p):
    psi, u, out = results(m, p)
    ref = brute(psi, u)
    assert np.allclose(out["log_z"], ref["log_z"], atol=1e-10)
    assert np.allclose(out["entropy"], ref["entropy"], atol=1e-10)
    for name in ("marginals", "marginals_grad"):
        assert np.allclose(out[name].unary, ref["unary"], atol=1e-10), name
        assert np.allclose(out[name].pairwise, ref["pairwise"], atol=1e-10), name
    # Best path and the k best, ties broken in reverse lexicographic order.
    assert np.allclose(out["best"], ref["ranked_scores"][0])
    scores, paths = out["kbest"]
    assert np.allclose(scores[:NUM_PATHS], ref["ranked_scores"], atol=1e-10)
    assert np.all(scores[NUM_PATHS:] == -np.inf)
    assert paths.shape == (NUM_PATHS + EXTRA, T) and np.all((0 <= paths) & (paths < K))
    finite = np.isfinite(ref["ranked_scores"])
    assert np.array_equal(paths[:NUM_PATHS][finite], ref["ranked_paths"][finite])
    if PROBLEMS[p][0] != "impossible":
        assert np.array_equal(out["best_path"], ref["ranked_paths"][0])
        # Samples are paths of positive probability.
        index = np.ravel_multi_index(out["samples"].T, (K,) * T)
        assert np.all(ref["probs"][index] > 0)
    # Nothing is NaN.
    assert not any(np.isnan(x).any() for x in jax.tree.leaves(out))


@pytest.mark.parametrize("p", range(len(PROBLEMS)), ids=PROBLEM_IDS)
def test_every_method_agrees(p):
    """Integer outputs are identical on every method (samples from the same key too)."""
    cases = [m for m, q in CASES if q == p]
    first = results(cases[0], p)[2]
    for m in cases[1:]:
        out = results(m, p)[2]
        for key in ("best_path", "samples"):
            assert np.array_equal(out[key], first[key]), (METHOD_IDS[m], key)
        assert np.array_equal(out["kbest"].paths, first["kbest"].paths)


def _brute_jnp(psi, u):
    """The path scores with jax.numpy, for reference gradients."""
    steps = psi if psi.ndim == 3 else jnp.broadcast_to(psi, (T - 1, K, K))
    s = u[jnp.arange(T), PATHS].sum(axis=1)
    for t in range(T - 1):
        s = s + steps[t][PATHS[:, t], PATHS[:, t + 1]]
    return s


# (Auto is Sequential on a CPU at this length: its values are checked above.)
# (Fixed potentials: the gradient of log Z through the probability-space path is the
# default route of `marginals`, checked above.)
GRADIENT_CASES = [(m, False) for m in range(3)]


@pytest.mark.parametrize(
    "m, fixed", GRADIENT_CASES, ids=[f"{METHOD_IDS[m]}-{f}" for m, f in GRADIENT_CASES]
)
def test_gradients_match_brute_force(m, fixed):
    """Gradients of log Z, the entropy, the best score and the k best scores (through
    one combination of them) against jax.grad of the enumeration, and the two best
    paths (dense problems: no ties)."""
    psi, u = _problem("dense", fixed)
    (value, top), grads = gradients(METHODS[m])(psi, u)

    def reference(psi, u):
        s = _brute_jnp(psi, u)
        log_z = jax.nn.logsumexp(s)
        entropy = -jnp.sum(jnp.exp(s - log_z) * (s - log_z))
        return log_z + 0.5 * entropy + 0.25 * jnp.max(s) + 0.125 * jnp.sum(jax.lax.top_k(s, 2)[0])

    ref_value, ref_grads = jax.value_and_grad(reference, (0, 1))(psi, u)
    assert np.isclose(value, ref_value)
    assert all(np.allclose(g, r, atol=1e-9) for g, r in zip(grads, ref_grads))
    assert np.abs(ref_grads[0]).max() > 0.01  # (a gradient that could be wrong)
    ranked = brute(psi, u)
    assert np.allclose(top.scores, ranked["ranked_scores"][:2])
    assert np.array_equal(top.paths, ranked["ranked_paths"][:2])


def test_best_path_is_the_gradient_of_the_best_score():
    """Max's other exact route: the gradient of the best score w.r.t. the unaries is
    the indicator of the best path (when it is unique)."""
    psi, u = _problem("dense", False)
    grad = jax.jit(jax.grad(lambda v: crf.path_sum(psi, v, semiring=sr.Max(), method="parallel")))(
        u
    )
    path = brute(psi, u)["ranked_paths"][0]
    assert np.array_equal(np.asarray(grad), np.eye(K)[path])


def test_sampler_chi_square():
    """Joint path frequencies of exact samples (fixed seed, false alarm < 1e-6)."""
    rng = np.random.default_rng(3)
    t_len = 3
    psi = 0.4 * rng.normal(size=(t_len - 1, K, K))
    u = 0.4 * rng.normal(size=(t_len, K))
    psi[0, 1, 2] = -np.inf
    ref = brute(psi, u)
    n = 20000
    samples = crf.sample(
        jax.random.PRNGKey(11),
        jnp.asarray(psi),
        jnp.asarray(u),
        num_samples=n,
        method="sequential",
    )
    counts = np.bincount(np.ravel_multi_index(np.asarray(samples).T, (K,) * t_len), minlength=27)
    live = ref["probs"] > 0
    assert np.all(counts[~live] == 0)
    expected = n * ref["probs"][live]
    assert expected.min() > 20
    chi2 = ((counts[live] - expected) ** 2 / expected).sum()
    assert chi2 < stats.chi2.ppf(1 - 1e-6, live.sum() - 1), chi2


# ----------------------------------------------------------------------------- ragged


LENGTHS = (2, 1, 4)


RAGGED_CASES = [
    (scanalg.Sequential(), False),
    (scanalg.Sequential(), True),
    (scanalg.Parallel(), False),
]


@pytest.mark.parametrize("method, fixed", RAGGED_CASES, ids=[f"{m!r}-{f}" for m, f in RAGGED_CASES])
def test_ragged_batches_match_each_sequence(method, fixed):
    rng = np.random.default_rng(5)
    n = sum(LENGTHS)
    psi = rng.normal(size=(K, K) if fixed else (n - 1, K, K))
    u = rng.normal(size=(n, K))
    u[0, 0] = -np.inf
    lengths = jnp.asarray(LENGTHS)

    @jax.jit
    def run(psi, u):
        kw = dict(lengths=lengths, method=method)
        return (
            crf.log_partition(psi, u, **kw),
            crf.entropy(psi, u, **kw),
            crf.marginals(psi, u, by="backward", **kw),
            crf.marginals(psi, u, **kw),
            crf.argmax(psi, u, **kw),
            crf.kbest(psi, u, k=4, **kw),
        )

    log_z, entropy, marg, marg_grad, best, top = jax.tree.map(np.asarray, run(psi, u))
    start = 0
    pair_total = 0
    for b, length in enumerate(LENGTHS):
        seg = slice(start, start + length)
        seq_psi = psi if fixed else psi[start : start + length - 1]
        ref = brute(seq_psi, u[seg])
        assert np.isclose(log_z[b], ref["log_z"]) and np.isclose(entropy[b], ref["entropy"])
        for m in (marg, marg_grad):
            assert np.allclose(m.unary[seg], ref["unary"])
        if not fixed:
            assert np.allclose(marg.pairwise[start : start + length - 1], ref["pairwise"])
            if start + length - 1 < n - 1:  # the step to the next sequence
                assert np.all(marg.pairwise[start + length - 1] == 0)
        pair_total = pair_total + (ref["pairwise"] if fixed else 0)
        assert np.isclose(best.scores[b], ref["ranked_scores"][0])
        assert np.array_equal(best.paths[seg], ref["ranked_paths"][0])
        num = min(4, K**length)
        assert np.allclose(top.scores[b, :num], ref["ranked_scores"][:num])
        assert np.all(top.scores[b, num:] == -np.inf)
        assert np.array_equal(top.paths[:num, seg], ref["ranked_paths"][:num])
        start += length
    if fixed:
        assert np.allclose(marg.pairwise, pair_total) and np.allclose(
            marg_grad.pairwise, pair_total
        )


def test_ragged_samples_match_single_sequences():
    """With the same uniforms a packed batch samples what each sequence does alone:
    here, the marginal frequencies of a packed batch against each sequence's."""
    rng = np.random.default_rng(6)
    n = sum(LENGTHS)
    psi, u = rng.normal(size=(n - 1, K, K)), rng.normal(size=(n, K))
    draw = jax.jit(
        lambda key, p, v: crf.sample(key, p, v, lengths=jnp.asarray(LENGTHS), num_samples=4000)
    )
    samples = np.asarray(draw(jax.random.PRNGKey(0), psi, u))
    start = 0
    for length in LENGTHS:
        ref = brute(psi[start : start + length - 1], u[start : start + length])
        freq = np.stack([(samples[:, start : start + length] == j).mean(0) for j in range(K)], -1)
        assert np.abs(freq - ref["unary"]).max() < 0.04
        start += length


# -------------------------------------------------------------------------------- HMM


def _hmm(seed=0, t_len=5):
    rng = np.random.default_rng(seed)
    pi = rng.dirichlet(np.ones(K))
    a = rng.dirichlet(np.ones(K), size=K)
    a[0, 2] = 0.0
    a[0] /= a[0].sum()
    ll = rng.normal(size=(t_len, K))
    return pi, a, ll


def _hmm_reference(pi, a, ll):
    log_a = np.log(np.where(a > 0, a, 1)) + np.where(a > 0, 0, -np.inf)
    unaries = ll.copy()
    unaries[0] += np.log(pi)
    return log_a, unaries, brute(log_a, unaries)


def test_hmm_extras():
    pi, a, ll = _hmm()
    log_a, unaries, ref = _hmm_reference(pi, a, ll)
    method = "parallel"

    @jax.jit
    def run(pi, a, ll, log_a, unaries):
        return (
            scanalg.hmm_filter(pi, a, ll, method=method).marginal_loglik,
            crf.log_partition(log_a, unaries, method=method),
            crf.argmax(log_a, unaries, method=method).paths,
            scanalg.hmm.hmm_posterior_entropy(pi, a, ll, method=method),
            scanalg.hmm.hmm_posterior_kbest(pi, a, ll, k=5, method=method),
        )

    loglik, log_z, best, entropy, (log_probs, paths) = run(pi, a, ll, log_a, unaries)
    assert np.isclose(log_z, loglik) and np.isclose(ref["log_z"], loglik)
    assert np.isclose(entropy, ref["entropy"])
    assert np.allclose(log_probs, ref["ranked_scores"][:5] - ref["log_z"])
    assert np.array_equal(paths, ref["ranked_paths"][:5])
    with jax.numpy_rank_promotion("allow"):  # (hmm_posterior_mode promotes ranks today)
        mode = scanalg.hmm_posterior_mode(pi, a, ll, method=method)
    assert np.array_equal(paths[0], mode) and np.array_equal(best, mode)


def test_hmm_extras_ragged():
    pi, a, ll = _hmm(1, t_len=7)
    lengths = jnp.asarray(LENGTHS)

    @jax.jit
    def run(pi, a, ll):
        return (
            scanalg.hmm.hmm_posterior_entropy(pi, a, ll, lengths=lengths),
            scanalg.hmm.hmm_posterior_kbest(pi, a, ll, k=2, lengths=lengths),
        )

    entropy, (log_probs, paths) = run(pi, a, ll)
    start = 0
    for b, length in enumerate(LENGTHS):
        seg = slice(start, start + length)
        ref = _hmm_reference(pi, a, ll[seg])[2]
        assert np.isclose(entropy[b], ref["entropy"])
        num = min(2, K**length)
        assert np.allclose(log_probs[b, :num], ref["ranked_scores"][:num] - ref["log_z"])
        assert np.array_equal(paths[:num, seg], ref["ranked_paths"][:num])
        start += length


# ---------------------------------------------------------------------------- float32


def test_float32_long_chain():
    """Normalised messages: float32 log Z, marginals and entropy of a long chain agree
    with float64, on the fast (sequential: probability space) and exact (parallel: log
    space) paths."""
    rng = np.random.default_rng(8)
    t_len = 20000
    psi64 = rng.normal(size=(4, 4)) + 2 * np.eye(4)
    u64 = 2 * rng.normal(size=(t_len, 4))

    def run(method):
        def outputs(p, u):
            log_z = crf.log_partition(p, u, method=method)
            return log_z, crf.marginals(p, u, method=method), crf.entropy(p, u, method=method)

        return jax.jit(outputs)

    ref, ref_marg, ref_entropy = run("sequential")(psi64, u64)
    psi32, u32 = jnp.asarray(psi64, jnp.float32), jnp.asarray(u64, jnp.float32)
    for method in ["sequential", "parallel"]:
        got, marg, entropy = run(method)(psi32, u32)
        # (The entropy, about 0.5 nats a step, is carried in the messages: its rounding
        # is a random walk of ~sqrt(T) eps relative: about 1e-5 here, on either path.)
        assert abs(float(entropy) - float(ref_entropy)) < 1e-4 * float(ref_entropy), method
        assert got.dtype == jnp.float32
        assert abs(float(got) - float(ref)) < 1e-5 * abs(float(ref)), method
        assert np.abs(np.asarray(marg.unary, float) - ref_marg.unary).max() < 1e-4, method
        assert np.allclose(marg.pairwise, ref_marg.pairwise, rtol=1e-4), method


def test_probability_space_path_falls_back_to_log_space():
    """Sequential `Log` chains with fixed potentials run in probability space only
    when that is exact: not for a state reached only from one e^-100 less likely
    (float32), nor for a step with no possible state."""
    psi = jnp.array([[0.0, -jnp.inf], [-jnp.inf, 0.0]], jnp.float32)
    u = jnp.array([[0.0, -100.0], [-jnp.inf, 0.0], [0.0, 0.0]], jnp.float32)
    dense = jnp.zeros((2, 2), jnp.float32)
    dead = jnp.array([[0.0, 1.0], [-jnp.inf, -jnp.inf], [0.0, 0.0]], jnp.float32)

    @jax.jit
    def run(psi, u, dense, dead):
        return (
            crf.log_partition(psi, u, method="sequential"),
            crf.marginals(psi, u, method="sequential").unary,
            crf.log_partition(dense, dead, method="sequential"),
            crf.marginals(dense, dead, method="sequential", by="backward"),
            jax.grad(crf.log_partition, argnums=(0, 1))(dense, dead, method="sequential"),
        )

    log_z, unary, dead_z, dead_marg, grads = run(psi, u, dense, dead)
    assert float(log_z) == -100.0
    assert np.array_equal(unary, np.array([[0.0, 1.0]] * 3))
    assert float(dead_z) == -np.inf
    assert all(np.all(x == 0) for x in jax.tree.leaves((dead_marg, grads)))


def test_benchmark_baselines():
    """`python -m scanalg.bench crf-partition` / `crf-marginals` time a hand-written
    `lax.scan` forward algorithm (and its gradient) against `scanalg.crf`: it
    computes the same numbers."""
    from scanalg.bench._crf import baseline_log_partition, baseline_marginals, build_crf

    for task in ("crf-partition", "crf-marginals"):
        entries = build_crf(task, 6, 3, jnp.float64, ["sequential"], lambda m: m)
        assert {"sequential", "lax.scan"} <= set(entries)
    psi, u, out = results(0, PROBLEMS.index(("dense", True)))
    assert np.isclose(jax.jit(baseline_log_partition)(psi, u), out["log_z"])
    grad_psi, grad_u = jax.jit(baseline_marginals)(psi, u)
    assert np.allclose(grad_u, out["marginals"].unary)
    assert np.allclose(grad_psi, out["marginals"].pairwise)


# -------------------------------------------------------------------------- bad input


def test_bad_input():
    psi, u = _problem("dense", False)
    with pytest.raises(ValueError, match="`potentials`"):
        crf.log_partition(psi[0, 0], u)
    with pytest.raises(ValueError, match="`potentials`"):
        crf.log_partition(psi[..., :2], u)
    with pytest.raises(ValueError, match="`unaries`"):
        crf.log_partition(psi, u[:, :2])
    with pytest.raises(ValueError, match="T-1"):
        crf.log_partition(psi, u[:3])
    with pytest.raises(ValueError, match="`unaries`"):
        crf.log_partition(psi[0])
    with pytest.raises(ValueError, match="`k`"):
        crf.kbest(psi, u, k=0)
    with pytest.raises(TypeError, match="`k`"):
        crf.kbest(psi, u, k=2.0)
    with pytest.raises(TypeError, match="`semiring`"):
        crf.path_sum(psi, u, semiring="log")
    with pytest.raises(TypeError, match="`semiring`"):
        crf.path_sum(psi, u, semiring=scanalg.monoids.Sum())
    with pytest.raises(ValueError, match="`num_samples`"):
        crf.sample(jax.random.PRNGKey(0), psi, u, num_samples=0)
    with pytest.raises(ValueError, match="`by`"):
        crf.marginals(psi, u, by="magic")
    with pytest.raises(ValueError, match="`lengths` sum to 5"):
        crf.log_partition(psi, u, lengths=[2, 3])
    with pytest.raises(ValueError, match="at least one"):
        crf.log_partition(psi, u, lengths=[4, 0])
    with pytest.raises(ValueError, match="`log_likelihoods`"):
        scanalg.hmm.hmm_posterior_entropy(np.ones(K) / K, np.eye(K), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="`k`"):
        scanalg.hmm.hmm_posterior_kbest(np.ones(K) / K, np.eye(K), np.zeros((4, K)), k=0)
    with pytest.raises(Exception, match="NaN"):
        crf.log_partition(psi.at[0, 0, 0].set(jnp.nan), u)
    with pytest.raises(Exception, match="probability vector"):
        scanalg.hmm.hmm_posterior_entropy(np.ones(K), np.eye(K), np.zeros((4, K)))
