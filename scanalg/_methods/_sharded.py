"""`Sharded`: the blocked scan across the devices of a `jax.sharding.Mesh`."""

from typing import Any, ClassVar, Literal

import equinox as eqx
import jax
import jax.lax as lax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from .. import _tree
from .._monoid import AbstractMonoid
from ._auto import Auto
from ._base import AbstractScanMethod, combine_step, loop, on_elements
from ._blocked import Blocked
from ._sequential import Sequential

PyTree = Any


class Sharded(AbstractScanMethod):
    r"""Sequence parallelism: the time axis is split across the devices of a mesh axis.

    With $D$ devices along `axis_name`, the (padded) sequence is cut into $D$ chunks of
    length $L = \lceil T / D \rceil$, one per device, inside `jax.shard_map`:

    1. each device reduces its chunk, $c_d = x_{dL+1} \otimes\cdots\otimes x_{(d+1)L}$,
       with `local_reduce`;
    2. the $D$ chunk totals are all-gathered (one collective of $D$ elements) and each
       device forms its exclusive prefix $p_d = c_1 \otimes\cdots\otimes c_{d-1}$ (the
       suffix $c_{d+1} \otimes\cdots\otimes c_D$ for a reverse scan), or with an
       initial state $s$ the state $s \cdot p_d$;
    3. each device scans its chunk from $p_d$ with `local` (with `act` from
       $s \cdot p_d$ when an initial state is given).

    Work: about $2L$ combines per device (or $L$ combines and $L$ acts), plus $D$ for
    the totals; one `all_gather` of $D$ elements. This is `scanalg.Blocked` with the
    blocks on different devices. So with an initial state the sharded scan does a
    reduction pass of combines that a sequential scan (acts only) does not: it gains
    when the devices are many, or have cores of their own, compared with the cost
    of `combine` over `act` (see `examples/sharded_scan.py`).

    **Sharding.** Inputs may arrive sharded along time as
    `NamedSharding(mesh, PartitionSpec(axis_name))` (nothing moves), or in any other
    layout (they are split). When $T$ is a multiple of $D$ the outputs are sharded the
    same way, exclusive scans included: no device ever holds the whole sequence.
    Otherwise the inputs are padded (with copies of the boundary input, placed after
    the data in scan order, so no padded step reaches a real output) and the result is
    cut back; as JAX arrays are split into equal shards only, that result is
    replicated. Other mesh axes are left to the caller: use them for a batch of
    sequences with `jax.vmap(..., spmd_axis_name=...)` (see the sharding how-to).
    Meshes with `Explicit` axes (`jax.make_mesh`'s default) work too.

    **Arguments:**

    - `mesh`: a `jax.sharding.Mesh`.
    - `axis_name`: the mesh axis to split time over.
    - `local`: the method each device scans its chunk with (default `Auto()`:
      sequential on CPU; on a GPU, parallel for long chunks).
    - `local_reduce`: the method each device reduces its chunk with, in the first
      pass (default `Blocked()`: its combines run side by side across blocks, which
      is several times faster than a loop of combines on CPU and GPU alike).
    """

    combines_with_init: ClassVar[bool] = True

    mesh: Mesh = eqx.field(static=True)
    axis_name: str = eqx.field(static=True)
    local: AbstractScanMethod = eqx.field(default=Auto(), static=True)
    local_reduce: AbstractScanMethod = eqx.field(default=Blocked(), static=True)

    def __check_init__(self):
        if not isinstance(self.mesh, Mesh):
            raise TypeError(
                f"Sharded(mesh=...) must be a jax.sharding.Mesh, got {type(self.mesh).__name__}."
            )
        if self.axis_name not in self.mesh.axis_names:
            raise ValueError(
                f"Sharded(axis_name={self.axis_name!r}): the mesh has no axis of that name; "
                f"its axes are {tuple(self.mesh.axis_names)}."
            )
        for name in ("local", "local_reduce"):
            value = getattr(self, name)
            if not isinstance(value, AbstractScanMethod) or isinstance(value, Sharded):
                raise TypeError(
                    f"Sharded({name}=...) must be a single-device scan method, got {value!r}."
                )

    @property
    def num_devices(self) -> int:
        """The number of devices along `axis_name`, $D$."""
        return self.mesh.shape[self.axis_name]

    def _place(self, tree: PyTree, spec: PartitionSpec) -> PyTree:
        # Explicit mesh axes put shardings in the types: shard_map wants its inputs laid
        # out as in_specs say, and slicing a time-sharded array is ambiguous. Auto axes
        # need (and allow) no such help.
        types = dict(zip(self.mesh.axis_names, self.mesh.axis_types))
        if types[self.axis_name] != AxisType.Explicit:
            return tree
        return jax.sharding.reshard(tree, NamedSharding(self.mesh, spec))

    def _run(
        self,
        monoid: AbstractMonoid,
        elems: PyTree,
        init: PyTree | None,
        reverse: bool,
        what: Literal["prefix", "total"],
    ) -> PyTree:
        axis = self.axis_name
        n = jax.tree.leaves(elems)[0].shape[0]
        pad = -n % self.num_devices
        if pad:
            # Pad with copies of the boundary input *after* the data in scan order (at
            # the end forward, at the front in reverse): a scan never carries a padded
            # step into a real output, so the padding need not be the identity (inputs
            # are `lift`ed, so there may be no input that lifts to it). `total` does
            # not pad; see `total`.
            edge = _tree.repeat(_tree.index(elems, 0 if reverse else n - 1), pad)
            elems = _tree.concat(edge, elems) if reverse else _tree.concat(elems, edge)
        elems = self._place(elems, PartitionSpec(axis))
        # Array fields of the monoid (parameters) travel as replicated arguments.
        dynamic, static = eqx.partition(monoid, eqx.is_array)

        def body(dynamic, chunk, init):
            monoid = eqx.combine(dynamic, static)
            local = self.local.resolve(monoid, chunk, init)
            if what == "prefix" and init is None and not isinstance(local, Sequential):
                # Scan the chunk first; its total is the last (first) inclusive product.
                inclusive = local.prefix(monoid, chunk, reverse)
                total = _tree.index(inclusive, 0 if reverse else -1)
            else:
                inclusive = None
                total = self.local_reduce.resolve(monoid, chunk, None).total(monoid, chunk)
            # The D chunk totals, one per device, in time order on every device.
            totals = jax.tree.map(lambda x: lax.all_gather(x, axis), total)
            if what == "total":
                return Sequential().total(on_elements(monoid), totals)
            me = lax.axis_index(axis)
            if init is not None:
                # The state entering this chunk: init acted on by the earlier chunks.
                _, states = loop(
                    monoid.act, init, totals, reverse=reverse, unroll=1, exclusive=True
                )
                return local.prefix_act(monoid, chunk, _tree.index(states, me), reverse)
            # The product of the earlier chunks (later ones, in reverse): where it starts.
            ident = monoid.identity(total)
            on_totals = combine_step(on_elements(monoid), reverse)
            _, starts = loop(on_totals, ident, totals, reverse=reverse, unroll=1, exclusive=True)
            start = _tree.index(starts, me)
            if inclusive is None:
                step = combine_step(monoid, reverse)
                return loop(step, start, chunk, reverse=reverse, unroll=local.unroll)[1]
            if reverse:
                return jax.vmap(monoid.combine, in_axes=(0, None))(inclusive, start)
            return jax.vmap(monoid.combine, in_axes=(None, 0))(start, inclusive)

        time, replicated = PartitionSpec(axis), PartitionSpec()
        out = jax.shard_map(
            body,
            mesh=self.mesh,
            in_specs=(replicated, time, replicated),
            out_specs=time if what == "prefix" else replicated,
            check_vma=False,
        )(dynamic, elems, init)
        if pad:
            # JAX arrays are split into equal shards only, so the cut result is
            # replicated (a no-op for Auto axes; Explicit axes need it said).
            out = self._place(out, replicated)
            out = _tree.time_slice(out, pad, pad + n) if reverse else _tree.time_slice(out, 0, n)
        return out

    def prefix(self, monoid, elems, reverse):
        return self._run(monoid, elems, None, reverse, "prefix")

    def prefix_act(self, monoid, elems, init, reverse):
        return self._run(monoid, elems, init, reverse, "prefix")

    def total(self, monoid, elems):
        # Padding would have to be the identity here, so split instead: the first
        # multiple of D inputs across the devices, the few left over on one.
        n = jax.tree.leaves(elems)[0].shape[0]
        m = n - n % self.num_devices
        if m == n:
            return self._run(monoid, elems, None, False, "total")
        rest = Sequential().total(monoid, _tree.time_slice(elems, m, n))
        if m == 0:
            return rest
        head = self._run(monoid, _tree.time_slice(elems, 0, m), None, False, "total")
        return monoid.combine(head, rest)
