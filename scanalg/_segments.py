r"""Ragged batches: many sequences packed along time, scanned as one.

$B$ sequences of lengths $T_1, \dots, T_B$ are concatenated along time into arrays of
$N = \sum_b T_b$ steps, and `lengths` says where each ends. A model written over
packed sequences then answers a whole batch with one scan per pass (no padding, no
Python loop over sequences), and a single sequence is the batch of one, whose
segmentation costs nothing (`Segments(None, N)` knows statically that nothing
restarts).

A model family gets `lengths=` from five pieces:

- `Segments.check`, called by the public function before it `jit`s: `lengths`
  against the data (concrete values at once, with a `ValueError` naming both numbers;
  traced ones with `equinox.error_if`);
- `Segments(lengths, N)` inside, with the sequences' first and last steps, flags and
  ids;
- `Segments.scan_forward`: a forward scan with an initial state that restarts from
  that state at every sequence's first step (`scanalg.monoids.Segmented`);
- `Segments.restart_reverse` and `Segments.end_flags`: reverse scans restart by
  themselves when the step out of each sequence's last state is a *constant* map (to
  that sequence's own last state), so each sequence starts its backward pass from its
  own state;
- `Segments.sum`: accurate per-sequence sums (of per-step log-normalisers, say) with
  the caller's scan method (`sum_moves` and `outer_sum` for plain vectorised ones).
"""

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Int

from ._methods import AbstractScanMethod
from ._monoid import AbstractMonoid
from ._numerics import map_states, tree_sum, two_sum
from ._scan import scan
from .monoids import Segmented

PyTree = Any


class _CompensatedSum(AbstractMonoid):
    """Sums carried as unevaluated pairs `(high, low)` (double-word arithmetic): the
    rounding error of a long sum is $O(\\epsilon)$ whatever the order of the additions,
    so a sequential running sum is as accurate as a tree."""

    action_direction: ClassVar[Any] = None

    def combine(self, earlier, later):
        (h1, l1), (h2, l2) = earlier, later
        s, e = two_sum(h1, h2)
        return two_sum(s, e + (l1 + l2))

    def identity(self, like):
        return jax.tree.map(jnp.zeros_like, like)


class Segments(eqx.Module):
    r"""Where the sequences of a packed batch start and end.

    **Arguments:**

    - `lengths`: the sequence lengths $T_1, \dots, T_B \ge 1$, shape `(B,)`, summing to
      `num_timesteps` (check them first with `Segments.check`), or `None` for a single
      sequence.
    - `num_timesteps`: $N$, the packed length.

    Packed step $t$ belongs to sequence `ids[t]`; a *move* $t$ (for $t < N - 1$) goes
    from step $t$ to step $t + 1$ and crosses into the next sequence where `ends[t]`.
    """

    lengths: Int[Array, " num_sequences"] | None
    num_timesteps: int = eqx.field(static=True)

    @property
    def single(self) -> bool:
        """Whether this is one sequence (known at trace time: nothing restarts)."""
        return self.lengths is None

    @property
    def num_segments(self) -> int:
        return 1 if self.lengths is None else self.lengths.shape[0]

    @property
    def last(self) -> Int[Array, " num_sequences"]:
        """The packed index of each sequence's last step."""
        if self.lengths is None:
            return jnp.full((1,), self.num_timesteps - 1, jnp.int32)
        return jnp.cumsum(self.lengths) - 1

    @property
    def first(self) -> Int[Array, " num_sequences"]:
        """The packed index of each sequence's first step."""
        if self.lengths is None:
            return jnp.zeros((1,), jnp.int32)
        return self.last - self.lengths + 1

    def _flags(self, at: Array) -> Bool[Array, " num_timesteps"]:
        return jnp.zeros(self.num_timesteps, bool).at[at].set(True)

    @property
    def starts(self) -> Bool[Array, " num_timesteps"]:
        """Whether each packed step is the first of its sequence."""
        return self._flags(self.first)

    @property
    def ends(self) -> Bool[Array, " num_timesteps"]:
        """Whether each packed step is the last of its sequence."""
        return self._flags(self.last)

    @property
    def ids(self) -> Int[Array, " num_timesteps"]:
        """The sequence of each packed step."""
        if self.lengths is None:
            return jnp.zeros(self.num_timesteps, jnp.int32)
        return jnp.cumsum(self.starts.astype(jnp.int32)) - 1

    def per_step(self, values: PyTree) -> PyTree:
        """Per-sequence `values` (leading axis $B$) repeated at every step of their
        sequence (leading axis $N$)."""
        if self.lengths is None:
            n = self.num_timesteps
            return jax.tree.map(lambda v: jnp.broadcast_to(v[0], (n, *v.shape[1:])), values)
        return jax.tree.map(lambda v: v[self.ids], values)

    def end_flags(self) -> Bool[Array, " num_moves"] | None:
        """For each move, whether it leaves a sequence (`None` for a single sequence,
        where no move does)."""
        return None if self.lengths is None else self.ends[:-1]

    def restart_reverse(self, moves: PyTree, at_ends: PyTree) -> PyTree:
        """`moves` (leading axis $N - 1$) with each move that leaves a sequence replaced
        by `at_ends` (same structure; broadcast against it): for a reverse scan whose
        element at a sequence's end is the constant map to that sequence's own last
        state. A single sequence has no such move: `moves` comes back unchanged."""
        flags = self.end_flags()
        if flags is None:
            return moves

        def one(x, y):
            return jnp.where(flags.reshape(-1, *[1] * (x.ndim - 1)), y, x)

        return jax.tree.map(one, moves, at_ends)

    def scan_forward(
        self,
        monoid: AbstractMonoid,
        moves: PyTree,
        *,
        init: PyTree,
        method: str | AbstractScanMethod,
    ) -> PyTree:
        r"""The state before every packed step, each sequence started from `init`.

        **Arguments:**

        - `monoid`: a monoid with a forward action.
        - `moves`: its inputs, $N - 1$ or $N$ of them; input $t$ moves the state from
          step $t$ to $t + 1$ (those that leave a sequence, and an $N$-th, are not
          used; passing $N$ saves slicing the inputs and joining the states).
        - `init`: the state at every sequence's first step.
        - `method`: the scan method.

        **Returns:**

        The $N$ states, stacked along time: `init` at every sequence's first step, then
        `init` acted on by the moves of its own sequence. A single sequence is one
        `scanalg.scan`; a batch restarts with `scanalg.monoids.Segmented`.
        """
        init = jax.tree.map(jnp.asarray, init)
        exclusive = jax.tree.leaves(moves)[0].shape[0] == self.num_timesteps
        starts = self.starts if exclusive else self.starts[:-1]
        if self.lengths is None:
            states = scan(monoid, moves, init=init, exclusive=exclusive, method=method)
        else:
            restarting = Segmented(monoid, reset=init)
            states = scan(
                restarting, (starts, moves), init=init, exclusive=exclusive, method=method
            )
        if not exclusive:
            states = jax.tree.map(lambda s, x: jnp.concatenate([s[None], x]), init, states)
        if self.lengths is None:
            return states
        starts = self.starts
        return jax.tree.map(
            lambda s, x: jnp.where(starts.reshape(-1, *[1] * s.ndim), s, x), init, states
        )

    def sum(self, x: Array, *, method: str | AbstractScanMethod) -> Array:
        r"""Accurate per-sequence sums of per-step values `x` (leading axis $N$),
        shape `(B, ...)`.

        A single sequence is summed by a tree (`tree_sum`); a batch by a segmented scan
        in double-word arithmetic with `method`, so the rounding error is
        $O(\epsilon)$ relative for every method (a float32 sum over $10^6$ steps keeps
        its digits). $-\infty$ terms give $-\infty$ for their own sequence only.
        """
        if self.lengths is None:
            return tree_sum(x)[None]
        pairs = (self.starts, (x, jnp.zeros_like(x)))
        _, (high, low) = scan(Segmented(_CompensatedSum()), pairs, method=method)
        return (high + low)[self.last]

    def any(self, flags: Bool[Array, " num_timesteps"]) -> Bool[Array, " num_sequences"]:
        """Whether any step of each sequence is flagged, shape `(B,)`."""
        if self.lengths is None:
            return jnp.any(flags)[None]
        return jax.ops.segment_max(flags, self.ids, self.num_segments, True)

    def sum_moves(self, x: Array) -> Array:
        """Per-sequence sums over the moves (leading axis $N - 1$) of each sequence,
        shape `(B, ...)`: a plain vectorised sum (a scatter-add for a batch); see `sum`
        for long sums that must be accurate."""
        if self.lengths is None:
            return jnp.sum(x, axis=0)[None]
        return jax.ops.segment_sum(x, self.ids[:-1], self.num_segments, True)

    def outer_sum(self, u: Array, v: Array) -> Array:
        r"""$\sum_t u_t v_t^\top$ over the moves $t$ of each sequence: `u`, `v` of
        shape `(N-1, K)` (one row per move; those that leave a sequence should be
        zero in one of them), result `(B, K, K)`. A matrix product for a single
        sequence; for a batch, one `sum_moves` per row of the result (no
        `(N-1, K, K)` temporary)."""
        if self.lengths is None:
            return (u.T @ v)[None]
        return map_states(u.shape[1], lambda i: self.sum_moves(u[:, i, None] * v), axis=1)

    @staticmethod
    def check(lengths: Any, num_timesteps: int) -> Int[Array, " num_sequences"] | None:
        """Check `lengths` against the packed length: shape and dtype at trace time;
        values at trace time when they are concrete (`ValueError` naming both numbers),
        else with `equinox.error_if` when the computation runs. Returns an `int32`
        array (or `None` for `None`)."""
        if lengths is None:
            return None
        if isinstance(lengths, list | tuple):
            lengths = np.asarray(lengths)
        shape = jnp.shape(lengths)
        if len(shape) != 1 or shape[0] < 1:
            raise ValueError(
                f"`lengths` must be a 1-D array of the B >= 1 sequence lengths, got shape {shape}."
            )
        dtype = jnp.result_type(lengths)
        if not jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_:
            raise TypeError(f"`lengths` must hold integers, got dtype {dtype}.")
        if not isinstance(lengths, jax.core.Tracer):
            concrete = np.asarray(lengths)
            total = int(concrete.sum())
            if total != num_timesteps:
                raise ValueError(
                    f"`lengths` sum to {total}, but the data has {num_timesteps} time "
                    "steps; the sequences must be packed one after another with no gaps."
                )
            if np.any(concrete < 1):
                bad = int(concrete.min())
                raise ValueError(
                    f"Every sequence needs at least one time step; `lengths` has {bad}."
                )
            return jnp.asarray(concrete, jnp.int32)
        lengths = jnp.asarray(lengths, jnp.int32)
        lengths = eqx.error_if(
            lengths,
            jnp.sum(lengths) != num_timesteps,
            f"`lengths` do not sum to the {num_timesteps} time steps of the data.",
        )
        return eqx.error_if(lengths, jnp.any(lengths < 1), "`lengths` has a length below one.")
