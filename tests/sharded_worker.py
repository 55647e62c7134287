"""Checks of `scanalg.Sharded` on forced host devices, run in a subprocess.

`python tests/sharded_worker.py N` forces N CPU devices (XLA_FLAGS must be set before
JAX is imported, hence the subprocess), runs the checks `CHECKS[N]` and prints one
JSON line `{"devices": N, "results": {check: [ok, detail, seconds]}}` (seconds of CPU
time). `tests/test_sharded.py` runs it for N = 4 and 8 at once and turns each check
into a test. No check is allowed to crash the worker: an exception is a failed check
with its message as the detail.
"""

import json
import os
import sys
import time
import traceback

MONOIDS = ("Sum", "Product", "Max", "Min", "LogAddExp", "MatMul", "Affine", "FiniteFunction")
# Per device count D: a multiple of D, a length that is not, and one below D.
LENGTH_KINDS = ("multiple", "ragged", "short")
# Checks whose subject is the chunking run on both device counts; the others (whose
# device count is incidental) on one each, to share the time between the workers.
BOTH = (
    *(f"{m}-{kind}" for m in MONOIDS for kind in LENGTH_KINDS),
    "batch-2d",
    *(f"hmm-{kind}" for kind in ("aligned", "multiple")),
    *(f"lgssm_filter-{kind}" for kind in ("multiple", "ragged")),
)
CHECKS = {
    4: (*BOTH, "local-parallel", "grad", "reduce"),
    8: (*BOTH, "hmm-short", "eager-sharding", "explicit-mesh", "batch-1d"),
}


def lengths(devices: int) -> dict[str, int]:
    return {"multiple": 3 * devices, "ragged": 2 * devices + 3, "short": devices - 1}


def run_checks(devices: int) -> dict[str, tuple[bool, str, float]]:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    from helpers import tree_max_error
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from test_scan import all_monoids, make_elems, make_init

    import scanalg
    from scanalg._monoid import supports_direction

    assert jax.device_count() == devices, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("time",))
    sharded = scanalg.Sharded(mesh, "time")
    time_sharding = NamedSharding(mesh, P("time"))
    results: dict[str, tuple[bool, str, float]] = {}

    def check(name):
        def wrap(fn):
            if name not in CHECKS[devices]:
                return fn
            start = time.process_time()
            try:
                ok, detail = fn()
            except Exception:
                ok, detail = False, traceback.format_exc(limit=4)[-2000:]
            results[name] = (ok, detail, round(time.process_time() - start, 2))
            return fn

        return wrap

    def compare(got, want, exact: bool, tol: float = 1e-9) -> tuple[bool, str]:
        same_structure = jax.tree.structure(got) == jax.tree.structure(want)
        if not same_structure:
            return False, f"structure {jax.tree.structure(got)} != {jax.tree.structure(want)}"
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            a, b = np.asarray(a), np.asarray(b)
            if a.shape != b.shape or a.dtype != b.dtype:
                return False, f"{a.dtype}{a.shape} != {b.dtype}{b.shape}"
            if exact and not np.array_equal(a, b):
                return False, f"not bit-identical: {a.tolist()} vs {b.tolist()}"
        err = tree_max_error(got, want)
        return err <= tol, f"max error {err:.3g}"

    jitted = {}

    def reference(name, n, reverse, exclusive, with_init):
        """A Python left fold, one element at a time (combine and act jitted once per
        monoid; the elements are host arrays, so each step is a single dispatch)."""
        monoid = all_monoids[name]
        if name not in jitted:
            jitted[name] = jax.jit(monoid.combine), jax.jit(monoid.act)
        combine, act = jitted[name]
        elems = jax.tree.map(np.asarray, make_elems(name, n))
        at = [jax.tree.map(lambda x, t=t: x[t], elems) for t in range(n)]
        if with_init:
            carry, step = make_init(name), act
        else:
            carry = monoid.identity(at[0])
            step = (lambda c, x: combine(x, c)) if reverse else combine
        out = [None] * n
        for t in range(n - 1, -1, -1) if reverse else range(n):
            new = step(carry, at[t])
            out[t], carry = (carry if exclusive else new), new
        return jax.tree.map(lambda *xs: np.stack(xs), *out)

    def scan_variants(name, cases, method, n):
        """`all_monoids[name]` scanned by `method` in every `(reverse, exclusive,
        with_init)` case, in one jitted call on `make_elems(name, n)`."""
        monoid, init = all_monoids[name], make_init(name)

        def run(elems):
            return [
                scanalg.scan(
                    monoid,
                    elems,
                    reverse=reverse,
                    exclusive=exclusive,
                    init=init if with_init else None,
                    method=method,
                )
                for reverse, exclusive, with_init in cases
            ]

        return jax.jit(run)(make_elems(name, n))

    def variants(monoid):
        """(reverse, exclusive, with_init) combinations the monoid supports."""
        out = []
        for reverse in (False, True):
            for exclusive in (False, True):
                out.append((reverse, exclusive, False))
                if supports_direction(monoid, reverse):
                    out.append((reverse, exclusive, True))
        return out

    # 1. Every basic monoid, every variant, three lengths; one compile per (monoid, T),
    #    against the Python left fold of tests/test_scan.py.
    for name in MONOIDS:
        monoid = all_monoids[name]
        for kind, n in lengths(devices).items():

            @check(f"{name}-{kind}")
            def _(monoid=monoid, name=name, n=n, kind=kind):
                cases = variants(monoid)
                got = scan_variants(name, cases, sharded, n)
                want = [reference(name, n, *case) for case in cases]
                ok, detail = compare(got, want, exact=name in ("FiniteFunction", "Max", "Min"))
                if ok and kind == "multiple":
                    # Inside jit too, the time axis stays split across the devices.
                    for leaf in jax.tree.leaves(got):
                        if not leaf.sharding.is_equivalent_to(time_sharding, leaf.ndim):
                            return False, f"output sharding {leaf.sharding}"
                return ok, f"{len(cases)} variants; {detail}"

    @check("local-parallel")
    def _():
        # The accelerator configuration: a parallel scan and reduction inside each device.
        method = scanalg.Sharded(
            mesh, "time", local=scanalg.Parallel(), local_reduce=scanalg.Parallel()
        )
        details = []
        for name, kind in (("Affine", "ragged"), ("FiniteFunction", "multiple")):
            n = lengths(devices)[kind]
            cases = variants(all_monoids[name])
            got = scan_variants(name, cases, method, n)
            want = [reference(name, n, *case) for case in cases]
            ok, detail = compare(got, want, exact=name == "FiniteFunction")
            if not ok:
                return False, f"{name} T={n}: {detail}"
            details.append(detail)
        return True, "; ".join(details)

    @check("grad")
    def _():
        # Reverse mode through shard_map: gradients for the split elements, the
        # replicated initial state and the monoid's own parameters (an HMM matrix).
        n = lengths(devices)["ragged"]
        elems, h0 = make_elems("Affine", n), jnp.array([1.0, -2.0, 0.5])
        ll = jnp.asarray(np.random.default_rng(n).normal(size=(n, 3)))
        hmm_monoid = scanalg.hmm.HMMForward

        def loss(elems, h0, a, method):
            states = scanalg.scan(
                all_monoids["Affine"], elems, init=h0, exclusive=True, method=method
            )
            filtered = scanalg.scan(hmm_monoid(a), ll, init=jnp.full(3, 1 / 3), method=method)
            return jnp.sum(jnp.sin(states)) + jnp.sum(filtered**2)

        grads = jax.jit(
            lambda *args: [
                jax.grad(loss, argnums=(0, 1, 2))(*args, method=m)
                for m in (sharded, scanalg.Sequential())
            ]
        )
        got, want = grads(elems, h0, jnp.full((3, 3), 0.2) + 0.4 * jnp.eye(3))
        return compare(got, want, exact=False, tol=1e-10)

    @check("reduce")
    def _():
        names = ("Affine", "FiniteFunction")
        elems = [make_elems(name, n) for name in names for n in lengths(devices).values()]
        monoids = [all_monoids[name] for name in names for _ in lengths(devices)]

        @jax.jit
        def run(elems):
            return [
                [scanalg.reduce(m, e, method=method) for m, e in zip(monoids, elems)]
                for method in (sharded, scanalg.Sequential())
            ]

        got, want = run(elems)
        return compare(got, want, exact=False, tol=1e-12)

    @check("eager-sharding")
    def _():
        # Outside jit, inputs already split along time (exclusive: the executor's shift
        # must keep the layout too): each device holds only its own chunk of the output.
        n = lengths(devices)["multiple"]
        name = "Affine"
        elems = jax.device_put(make_elems(name, n), time_sharding)
        out = scanalg.scan(
            all_monoids[name], elems, init=make_init(name), exclusive=True, method=sharded
        )
        shard_lengths = {s.data.shape[0] for s in out.addressable_shards}
        if not out.sharding.is_equivalent_to(time_sharding, out.ndim) or (
            shard_lengths != {n // devices}
        ):
            return False, f"output sharding {out.sharding}, shard lengths {shard_lengths}"
        return compare(out, reference(name, n, False, True, True), exact=False)

    @check("explicit-mesh")
    def _():
        # jax.make_mesh gives Explicit axes by default: shardings are part of the types.
        emesh = jax.make_mesh((devices,), ("time",), (jax.sharding.AxisType.Explicit,))
        method = scanalg.Sharded(emesh, "time")
        details = []
        for n in (lengths(devices)["multiple"], lengths(devices)["ragged"]):
            elems = make_elems("FiniteFunction", n)
            init = make_init("FiniteFunction")
            kw = dict(init=init, reverse=True, exclusive=True)
            got = scanalg.scan(scanalg.monoids.FiniteFunction(), elems, method=method, **kw)
            ok, detail = compare(got, reference("FiniteFunction", n, True, True, True), exact=True)
            if not ok:
                return False, f"T={n}: {detail}"
            if n % devices == 0 and got.sharding.spec != P("time"):
                return False, f"T={n}: output sharding {got.sharding}"
            details.append(str(got.sharding.spec))
        return True, ", ".join(details)

    @check("batch-1d")
    def _():
        # Many independent sequences, split over devices: jit + NamedSharding + vmap.
        bmesh = Mesh(np.array(jax.devices()), ("batch",))
        batch = NamedSharding(bmesh, P("batch"))
        a, b = make_elems("Affine", 2 * devices * 50, seed=1)
        a, b = np.reshape(a, (2 * devices, 50, 3, 3)), np.reshape(b, (2 * devices, 50, 3))
        init = make_init("Affine")

        def one(e):
            return scanalg.scan(scanalg.monoids.Affine(), e, init=init, method="sequential")

        got = jax.jit(jax.vmap(one))(jax.device_put((a, b), batch))
        want = [jax.jit(one)((a[i], b[i])) for i in range(2 * devices)]
        if not got.sharding.is_equivalent_to(batch, got.ndim):
            return False, f"output sharding {got.sharding}"
        return compare(got, jnp.stack(want), exact=False)

    @check("batch-2d")
    def _():
        # A batch x time mesh: Sharded on "time" inside vmap with spmd_axis_name="batch".
        mesh2 = Mesh(np.array(jax.devices()).reshape(2, devices // 2), ("batch", "time"))
        both = NamedSharding(mesh2, P("batch", "time"))
        n = 3 * devices
        elems = jax.device_put(make_elems("FiniteFunction", 4 * n, seed=2).reshape(4, n, 5), both)
        init = make_init("FiniteFunction")

        def one(method):
            return lambda e: scanalg.scan(
                scanalg.monoids.FiniteFunction(),
                e,
                init=init,
                reverse=True,
                exclusive=True,
                method=method,
            )

        got = jax.jit(jax.vmap(one(scanalg.Sharded(mesh2, "time")), spmd_axis_name="batch"))(elems)
        want = jax.vmap(one("sequential"))(elems)
        if not got.sharding.is_equivalent_to(both, got.ndim):
            return False, f"output sharding {got.sharding}"
        return compare(got, want, exact=True)

    # HMM and LGSSM: the user-level functions with method=Sharded(...).
    try:
        from scanalg import hmm
    except ImportError:
        hmm = None
    # The HMM functions scan T - 1 steps: "aligned" makes those a multiple of D (the
    # even path), "multiple" makes T one (so the scans are ragged).
    hmm_lengths = {"aligned": 2 * devices + 1, "multiple": 3 * devices, "short": devices - 1}
    for kind, n in hmm_lengths.items():

        @check(f"hmm-{kind}")
        def _(n=n):
            if hmm is None:
                return False, "scanalg.hmm does not exist"
            rng = np.random.default_rng(n)
            k = 3
            pi = rng.dirichlet(np.ones(k))
            a = rng.dirichlet(np.ones(k), size=k)
            ll = rng.normal(size=(n, k))
            key = jax.random.key(0)

            @jax.jit
            def run(pi, a, ll):
                out = []
                for method in (sharded, scanalg.Sequential()):
                    out.append(
                        (
                            hmm.hmm_filter(pi, a, ll, method=method),
                            hmm.hmm_posterior_sample(key, pi, a, ll, method=method),
                            hmm.hmm_posterior_mode(pi, a, ll, method=method),
                        )
                    )
                return out

            (f1, s1, m1), (f2, s2, m2) = run(pi, a, ll)
            for what, got, want, exact in [
                ("filter", f1, f2, False),
                ("sample", s1, s2, False),
                ("mode", m1, m2, True),
            ]:
                ok, detail = compare(got, want, exact=exact)
                if not ok:
                    return False, f"{what}: {detail}"
            return True, "ok"

    try:
        from lgssm_reference import random_model

        from scanalg import lgssm
    except ImportError:
        lgssm = None
    for kind in ("multiple", "ragged"):
        n = lengths(devices)[kind]

        @check(f"lgssm_filter-{kind}")
        def _(n=n):
            if lgssm is None:
                return False, "scanalg.lgssm does not exist"
            kw, emissions, _ = random_model(n, n, 2, 2)
            params = lgssm.LGSSMParams(**kw)

            @jax.jit
            def run(params, emissions):
                return [
                    lgssm.lgssm_filter(params, emissions, method=m)
                    for m in (sharded, scanalg.Sequential())
                ]

            got, want = run(params, emissions)
            return compare(got, want, exact=False, tol=1e-8)

    missing = set(CHECKS[devices]) - set(results)
    for name in missing:
        results[name] = (False, "check did not run", 0.0)
    return results


if __name__ == "__main__":
    n = int(sys.argv[1])
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n}"
    )
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    print(json.dumps({"devices": n, "results": run_checks(n)}))
