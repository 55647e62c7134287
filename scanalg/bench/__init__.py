"""`python -m scanalg.bench`: time scanalg's methods (and dynamax) over sequence lengths.

Example:

    python -m scanalg.bench hmm-sample --lengths 1e2:1e5:4 --sizes 2,5,20 \
        --compare dynamax --out bench_out

Needs the `bench` extra (matplotlib, tqdm); `--compare dynamax` needs the `oracle` extra.
"""

import argparse
from pathlib import Path

import numpy as np

from ._run import crossovers, device_info, format_crossovers, format_table, run, save
from ._tasks import TASKS


def parse_lengths(text: str) -> list[int]:
    """`"100,1000"` or a log-spaced range `"1e2:1e5:4"` (start:stop:count)."""
    if ":" in text:
        start, stop, count = text.split(":")
        grid = np.geomspace(float(start), float(stop), int(count))
        return sorted({int(round(x)) for x in grid})
    return [int(float(x)) for x in text.split(",")]


def _echo(rec: dict) -> None:
    print(
        f"measured {rec['task']} T={rec['T']} size={rec['size']} {rec['entry']}: "
        f"median {1e3 * rec['median_s']:.3f} ms, compile {rec['compile_s']:.2f} s",
        flush=True,
    )


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m scanalg.bench", description=__doc__.split("\n")[0])
    p.add_argument("task", choices=TASKS)
    p.add_argument("--monoid", default="MatMul", help="built-in monoid for the `monoid` task")
    p.add_argument("--lengths", default="1e2:1e4:3", help="'100,1000' or 'start:stop:count'")
    p.add_argument("--sizes", default="5", help="K for HMMs, state_dim for LGSSMs, n for monoids")
    p.add_argument(
        "--methods",
        default="sequential,parallel,blocked,auto",
        help="scan methods by name; also Parallel's algorithms on the inputs themselves "
        "(leaf_size=1): 'hybrid' (levels=6), 'associative_scan' and 'doubling'",
    )
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--compare",
        choices=["dynamax", "dynamax-serial", "dynamax-parallel"],
        default=None,
        help="add dynamax's serial and parallel functions (or only one kind)",
    )
    p.add_argument("--out", type=Path, default=None, help="write JSON and a PNG here")
    p.add_argument(
        "--memory",
        action="store_true",
        help="also report XLA's memory analysis (peak/out); compiles every entry twice",
    )
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar; print each result instead"
    )
    a = p.parse_args(argv)
    if a.dtype == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)
    lengths = parse_lengths(a.lengths)
    sizes = [int(s) for s in a.sizes.split(",")]
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    records = run(
        a.task,
        lengths,
        sizes,
        methods,
        np.dtype(a.dtype),
        a.repeats,
        a.compare,
        a.monoid,
        progress=not a.no_progress,
        echo=_echo if a.no_progress else None,
        memory=a.memory,
    )
    if a.task == "monoid":
        for r in records:
            r["monoid"] = a.monoid
    cross = crossovers(records)
    info = device_info()
    print(
        f"device: {info['device']} ({info['backend']}, {info['num_devices']} device(s)), "
        f"jax {info['jax']}"
    )
    print(format_table(records))
    print("\ncrossovers:")
    print(format_crossovers(cross))
    if a.out is not None:
        for path in save(records, cross, a.out, a.task):
            print(f"wrote {path}")
    return records
