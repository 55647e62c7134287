"""`Sharded`: the blocked scan across the devices of a `jax.sharding.Mesh`."""

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from ._auto import Auto
from ._base import AbstractScanMethod, check_method
from ._blocked import Blocked
from ._sequential import Sequential
from ._three_pass import OnDevices, ThreePass, cut, pad_after, total_in_parts

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
    3. each device scans its chunk from $p_d$ with `local` (with `act_input` from
       $s \cdot p_d$ when an initial state is given).

    When `local` cannot start from a given element at no extra cost
    (`scans_from_start` is false, e.g. `Parallel`), a scan without an initial state
    scans each chunk first, reads $c_d$ off its last prefix and combines $p_d$ into
    every prefix afterwards.

    Work: about $2L$ combines per device (or $L$ combines and $L$ acts), plus $D$ for
    the totals; one `all_gather` of $D$ elements. These are the passes of
    `scanalg.Blocked` (the same code), with the blocks on different devices. So with
    an initial state the sharded scan does a reduction pass of combines that a
    sequential scan (acts only) does not: it gains when the devices are many, or have
    cores of their own, compared with the cost of `combine` over `act` (see
    `examples/sharded_scan.py`).

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
    - `local`: the single-device method each device scans its chunk with (default
      `Auto()`: sequential on CPU; on a GPU, parallel for long chunks).
    - `local_reduce`: the single-device method each device reduces its chunk with,
      in the first pass (default `Blocked()`: its combines run side by side across
      blocks).
    """

    combines_with_init: ClassVar[bool] = True
    scans_from_start: ClassVar[bool] = True
    multi_device: ClassVar[bool] = True

    mesh: Mesh = eqx.field(static=True)
    axis_name: str = eqx.field(static=True)
    local: AbstractScanMethod = eqx.field(default=Auto(), static=True)
    local_reduce: AbstractScanMethod = eqx.field(default=Blocked(), static=True)

    def __check_init__(self):
        if not isinstance(self.mesh, Mesh):
            raise TypeError(
                f"Sharded(mesh=...) must be a jax.sharding.Mesh, got {type(self.mesh).__name__}."
            )
        if not isinstance(self.axis_name, str):
            raise TypeError(f"Sharded(axis_name=...) must be a str, got {self.axis_name!r}.")
        if self.axis_name not in self.mesh.axis_names:
            raise ValueError(
                f"Sharded(axis_name={self.axis_name!r}): the mesh has no axis of that name; "
                f"its axes are {tuple(self.mesh.axis_names)}."
            )
        check_method("Sharded", "local", self.local, single_device=True)
        check_method("Sharded", "local_reduce", self.local_reduce, single_device=True)

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

    def _passes(self) -> ThreePass:
        return ThreePass(
            OnDevices(self.axis_name),
            local=self.local,
            local_reduce=self.local_reduce,
            outer=Sequential(),
        )

    def _run(self, run: Callable, monoid, elems, extra: PyTree, reverse: bool, split: bool):
        """`run(monoid, chunk, extra)` on every device's chunk of `elems` (padded, see
        `pad_after`, and cut back when `split`; otherwise the length is a multiple of
        $D$ and the result replicated). `extra` is replicated."""
        n = jax.tree.leaves(elems)[0].shape[0]
        pad = -n % self.num_devices if split else 0
        elems = self._place(pad_after(elems, pad, reverse), PartitionSpec(self.axis_name))
        # Array fields of the monoid (parameters) travel as replicated arguments.
        dynamic, static = eqx.partition(monoid, eqx.is_array)
        time, replicated = PartitionSpec(self.axis_name), PartitionSpec()
        out = jax.shard_map(
            lambda dynamic, chunk, extra: run(eqx.combine(dynamic, static), chunk, extra),
            mesh=self.mesh,
            in_specs=(replicated, time, replicated),
            out_specs=time if split else replicated,
            check_vma=False,
        )(dynamic, elems, extra)
        if pad:
            # JAX arrays are split into equal shards only, so the cut result is
            # replicated (a no-op for Auto axes; Explicit axes need it said).
            out = cut(self._place(out, replicated), n, pad, reverse)
        return out

    def prefix(self, monoid, elems, reverse):
        def run(monoid, chunk, _):
            return self._passes().prefix(monoid, chunk, reverse)

        return self._run(run, monoid, elems, None, reverse, split=True)

    def prefix_from(self, monoid, elems, start, reverse):
        def run(monoid, chunk, start):
            return self._passes().prefix(monoid, chunk, reverse, start)

        return self._run(run, monoid, elems, start, reverse, split=True)

    def prefix_act(self, monoid, elems, init, reverse):
        return self.states(monoid, elems, init, reverse)

    def states(self, monoid, elems, init, reverse, exclusive=False, readout=None):
        def run(monoid, chunk, init):
            return self._passes().states(monoid, chunk, init, reverse, exclusive, readout)

        return self._run(run, monoid, elems, init, reverse, split=True)

    def total(self, monoid, elems):
        def head(elems):
            def run(monoid, chunk, _):
                return self._passes().total(monoid, chunk)

            return self._run(run, monoid, elems, None, False, split=False)

        return total_in_parts(monoid, elems, self.num_devices, head, Sequential())
