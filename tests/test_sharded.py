"""`scanalg.Sharded`: the scan split over time across devices.

Runs in this process on the four CPU devices that conftest.py asks for. Every basic
monoid at every length is scanned with a `Sharded` over all four (on a mesh with
`Auto` axes) in test_scan.py, as it is in `helpers.all_methods`; here: two devices
on a mesh with `Explicit` axes (`jax.make_mesh`'s default, where shardings are part
of the types), output shardings, other local methods, gradients, batches over a
second mesh axis, and the model functions.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    EXACT,
    all_monoids,
    make_elems,
    make_init,
    mesh,
    reference,
    tree_allclose,
    variants,
)
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import scanalg


def _lengths(devices):
    """A multiple of the device count D, a length that is not, and one below D."""
    return {"multiple": 3 * devices, "ragged": 2 * devices + 3, "short": devices - 1}


def _close(got, want, name):
    if name in EXACT:
        return tree_allclose(got, want, rtol=0, atol=0)
    return tree_allclose(got, want, rtol=1e-9, atol=1e-9)


def _is_time_sharded(tree, m):
    sharding = NamedSharding(m, P("time"))
    return all(x.sharding.is_equivalent_to(sharding, x.ndim) for x in jax.tree.leaves(tree))


@functools.cache
def _scan_all(name, method):
    """Every variant of `all_monoids[name]` scanned by `method`, jitted once per shape."""
    monoid, init = all_monoids[name], make_init(name)

    @jax.jit
    def run(elems):
        return [
            scanalg.scan(
                monoid,
                elems,
                init=init if with_init else None,
                reverse=reverse,
                exclusive=exclusive,
                method=method,
            )
            for reverse, exclusive, with_init in variants(name)
        ]

    return run


def _check_variants(name, method, n, m=None):
    got = _scan_all(name, method)(make_elems(name, n))
    for case, out in zip(variants(name), got):
        assert _close(out, reference(name, n, *case), name), (name, n, case)
        if m is not None and n % m.size == 0:
            # Inside jit too, the time axis stays split across the devices.
            assert _is_time_sharded(out, m), (case, jax.tree.leaves(out)[0].sharding)


mesh2 = jax.make_mesh((2,), ("time",), devices=jax.devices()[:2])
explicit = jax.make_mesh((4,), ("time",))


@pytest.mark.parametrize("name", list(all_monoids))
def test_two_devices(name):
    for n in _lengths(2).values():
        _check_variants(name, scanalg.Sharded(mesh2, "time"), n, mesh2)


@pytest.mark.parametrize("name", ["Affine", "FiniteFunction"])
def test_outputs_stay_sharded(name):
    _check_variants(name, scanalg.Sharded(mesh, "time"), _lengths(4)["multiple"], mesh)


@pytest.mark.parametrize("name, kind", [("Affine", "ragged"), ("FiniteFunction", "multiple")])
def test_local_parallel(name, kind):
    """The accelerator configuration: a parallel scan and reduction on each device
    (a scan without `init` then scans each chunk first and fixes it up)."""
    method = scanalg.Sharded(
        mesh, "time", local=scanalg.Parallel(), local_reduce=scanalg.Parallel()
    )
    _check_variants(name, method, _lengths(4)[kind], mesh)


def test_grad():
    """Reverse mode through shard_map: gradients for the split elements, the
    replicated initial state and the monoid's own parameters (an HMM matrix)."""
    n = _lengths(4)["ragged"]
    elems, h0 = make_elems("Affine", n), jnp.array([1.0, -2.0, 0.5])
    ll = jnp.asarray(np.random.default_rng(n).normal(size=(n, 3)))

    def loss(elems, h0, a, method):
        states = scanalg.scan(all_monoids["Affine"], elems, init=h0, exclusive=True, method=method)
        hmm = scanalg.hmm.HMMForward(a)
        filtered = scanalg.scan(hmm, ll, init=jnp.full(3, 1 / 3), method=method)
        return jnp.sum(jnp.sin(states)) + jnp.sum(filtered**2)

    grads = jax.jit(
        lambda *args: [
            jax.grad(loss, argnums=(0, 1, 2))(*args, method=m)
            for m in (scanalg.Sharded(mesh, "time"), scanalg.Sequential())
        ]
    )
    got, want = grads(elems, h0, jnp.full((3, 3), 0.2) + 0.4 * jnp.eye(3))
    assert tree_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_eager_sharded_inputs():
    """Outside jit, inputs already split along time (exclusive: the executor's shift
    must keep the layout too): each device holds only its own chunk of the output."""
    n = _lengths(4)["multiple"]
    elems = jax.device_put(make_elems("Affine", n), NamedSharding(mesh, P("time")))
    out = scanalg.scan(
        all_monoids["Affine"],
        elems,
        init=make_init("Affine"),
        exclusive=True,
        method=scanalg.Sharded(mesh, "time"),
    )
    assert _is_time_sharded(out, mesh)
    assert {s.data.shape[0] for s in out.addressable_shards} == {n // 4}
    assert tree_allclose(out, reference("Affine", n, False, True, True), rtol=1e-9, atol=1e-9)


def test_explicit_mesh_output_spec():
    method = scanalg.Sharded(explicit, "time")
    for n in (_lengths(4)["multiple"], _lengths(4)["ragged"]):
        got = scanalg.scan(
            all_monoids["FiniteFunction"],
            make_elems("FiniteFunction", n),
            init=make_init("FiniteFunction"),
            reverse=True,
            exclusive=True,
            method=method,
        )
        np.testing.assert_array_equal(got, reference("FiniteFunction", n, True, True, True))
        if n % 4 == 0:
            assert got.sharding.spec == P("time"), got.sharding


def test_batch_over_devices():
    """Many independent sequences, split over devices: jit + NamedSharding + vmap."""
    batch = NamedSharding(Mesh(np.array(jax.devices()), ("batch",)), P("batch"))
    a, b = make_elems("Affine", 8 * 50, seed=1)
    a, b = jnp.reshape(a, (8, 50, 3, 3)), jnp.reshape(b, (8, 50, 3))

    def one(e):
        return scanalg.scan(all_monoids["Affine"], e, init=make_init("Affine"), method="sequential")

    got = jax.jit(jax.vmap(one))(jax.device_put((a, b), batch))
    assert got.sharding.is_equivalent_to(batch, got.ndim), got.sharding
    want = jnp.stack([jax.jit(one)((a[i], b[i])) for i in range(8)])
    assert tree_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_batch_and_time_mesh():
    """A batch x time mesh: Sharded on "time" inside vmap with spmd_axis_name="batch"."""
    mesh22 = Mesh(np.array(jax.devices()).reshape(2, 2), ("batch", "time"))
    both = NamedSharding(mesh22, P("batch", "time"))
    elems = jnp.reshape(make_elems("FiniteFunction", 4 * 12, seed=2), (4, 12, 5))

    def one(method):
        return lambda e: scanalg.scan(
            all_monoids["FiniteFunction"],
            e,
            init=make_init("FiniteFunction"),
            reverse=True,
            exclusive=True,
            method=method,
        )

    sharded = scanalg.Sharded(mesh22, "time")
    got = jax.jit(jax.vmap(one(sharded), spmd_axis_name="batch"))(jax.device_put(elems, both))
    assert got.sharding.is_equivalent_to(both, got.ndim), got.sharding
    np.testing.assert_array_equal(got, jax.vmap(one("sequential"))(elems))


def test_hmm_functions():
    """The HMM scans T - 1 steps: 9 makes those a multiple of D = 4 (the even path),
    12 makes T one (so the scans are ragged); 3 is shorter than D."""
    k, key = 3, jax.random.key(0)
    sharded = scanalg.Sharded(mesh, "time")

    @jax.jit
    def run(pi, a, ll):
        return [
            (
                scanalg.hmm_filter(pi, a, ll, method=method),
                scanalg.hmm_posterior_sample(key, pi, a, ll, method=method),
                scanalg.hmm_posterior_mode(pi, a, ll, method=method),
            )
            for method in (sharded, scanalg.Sequential())
        ]

    for n in (9, 12, 3):
        rng = np.random.default_rng(n)
        pi = jnp.asarray(rng.dirichlet(np.ones(k)))
        a = jnp.asarray(rng.dirichlet(np.ones(k), size=k))
        ll = jnp.asarray(rng.normal(size=(n, k)))
        (f1, s1, m1), (f2, s2, m2) = run(pi, a, ll)
        assert tree_allclose(f1, f2, rtol=1e-9, atol=1e-9), n
        assert tree_allclose(s1, s2, rtol=1e-9, atol=1e-9), n
        np.testing.assert_array_equal(m1, m2)


def test_lgssm_filter():
    from lgssm_reference import random_model

    sharded = scanalg.Sharded(mesh, "time")

    @jax.jit
    def run(params, emissions):
        return [scanalg.lgssm_filter(params, emissions, method=m) for m in (sharded, "sequential")]

    for n in (_lengths(4)["multiple"], _lengths(4)["ragged"]):
        kw, emissions, _ = random_model(n, n, 2, 2)
        got, want = run(scanalg.LGSSMParams(**kw), emissions)
        assert tree_allclose(got, want, rtol=1e-8, atol=1e-8), n


# ----------------------------------------------------------------- bad input


def _mesh(*names):
    return Mesh(np.array(jax.devices()[:1]).reshape((1,) * len(names)), names)


def test_mesh_without_axis():
    with pytest.raises(ValueError, match=r"axes are \('batch', 'time'\)"):
        scanalg.Sharded(_mesh("batch", "time"), "seq")


def test_bad_arguments():
    # (With jaxtyping's import hook on, as in this suite, annotated types are checked
    # before `__check_init__`; either way the error names the field.)
    with pytest.raises(TypeError, match="mesh"):
        scanalg.Sharded("mesh", "time")
    with pytest.raises(TypeError, match="axis_name"):
        scanalg.Sharded(_mesh("time"), 0)
    with pytest.raises(TypeError, match=r"local=...\) must be a single-device scan method"):
        scanalg.Sharded(_mesh("time"), "time", local=scanalg.Sharded(_mesh("time"), "time"))
    with pytest.raises(TypeError, match="local_reduce"):
        scanalg.Sharded(_mesh("time"), "time", local_reduce="blocked")
    with pytest.raises(TypeError, match=r"Blocked\(outer=...\) must be a single-device"):
        scanalg.Blocked(outer=scanalg.Sharded(_mesh("time"), "time"))


def test_one_device():
    # A mesh of one device is a plain sequential scan, also under jit and grad.
    method = scanalg.Sharded(_mesh("time"), "time")
    xs = jnp.linspace(0.5, 1.5, 7, dtype=jnp.float64)

    def loss(xs, method):
        ys = scanalg.scan(
            scanalg.monoids.Product(), xs, init=jnp.array(2.0), reverse=True, method=method
        )
        return jnp.sum(ys**2)

    got = jax.jit(jax.value_and_grad(loss), static_argnums=1)(xs, method)
    want = jax.value_and_grad(loss)(xs, scanalg.Sequential())
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
