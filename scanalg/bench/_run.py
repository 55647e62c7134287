"""Timing, crossover detection, and reporting for `python -m scanalg.bench`."""

import json
import math
import platform
import statistics
import time
from pathlib import Path

import jax
import numpy as np

from ._tasks import build


def time_entries(entries: dict, repeats: int, memory: bool = False) -> dict:
    """Time `repeats` runs of `jax.jit(fn)` for every entry `name: (fn, args)`, through
    `jit`'s own dispatch (what users call; calling a `Compiled` object directly takes
    a slower Python path for programs with host callbacks, such as `equinox.error_if`).

    After a first call of each entry, the runs go round-robin over the entries (one
    timed run of each, `repeats` times), so a burst of load on the machine slows every
    entry alike and the ratios between entries stay honest. Each timed run directly
    follows an untimed run of the same entry: what the previous entry left in the
    caches and the allocator (a large parallel program slowed the next entry's first
    run by up to 2x) is not counted. The compile time is the first
    call's time (trace, compile, run) less the median run. With `memory`, each
    function is also lowered and compiled on its own for XLA's memory analysis (a
    second compilation). Returns `name: record`."""
    jitted, first, times = {}, {}, {name: [] for name in entries}
    for name, (fn, args) in entries.items():
        jitted[name] = jax.jit(fn)
        t0 = time.perf_counter()
        jax.block_until_ready(jitted[name](*args))
        first[name] = time.perf_counter() - t0
    for _ in range(repeats):
        for name, (_, args) in entries.items():
            jax.block_until_ready(jitted[name](*args))  # untimed: warm after the switch
            t0 = time.perf_counter()
            jax.block_until_ready(jitted[name](*args))
            times[name].append(time.perf_counter() - t0)
    records = {}
    for name, (_, args) in entries.items():
        median = statistics.median(times[name])
        records[name] = {
            "compile_s": max(first[name] - median, 0.0),
            "min_s": min(times[name]),
            "median_s": median,
            "max_s": max(times[name]),
        }
        if memory:
            records[name].update(memory_info(jitted[name].lower(*args).compile()))
    return records


def memory_info(compiled) -> dict:
    """XLA's buffer assignment for a compiled function: the bytes of its outputs and
    of its temporaries, and the peak (outputs and temporaries alive at once; the
    inputs are not counted). `None`s where the backend does not say."""
    try:
        stats = compiled.memory_analysis()
        out, temp = stats.output_size_in_bytes, stats.temp_size_in_bytes
    except Exception:  # noqa: BLE001 (some backends have no memory analysis)
        return {"output_bytes": None, "temp_bytes": None, "peak_over_output": None}
    return {
        "output_bytes": out,
        "temp_bytes": temp,
        "peak_over_output": (out + temp) / out if out else None,
    }


def device_info() -> dict:
    dev = jax.devices()[0]
    return {
        "backend": jax.default_backend(),
        "device": getattr(dev, "device_kind", str(dev)),
        "num_devices": jax.device_count(),
        "jax": jax.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
    }


def run(
    task,
    lengths,
    sizes,
    methods,
    dtype,
    repeats,
    compare,
    monoid,
    progress=True,
    echo=None,
    memory=False,
):
    """Time every entry on every (length, size); returns a list of records.

    `echo`, if given, is called with each record as soon as its (length, size) has
    been measured (so a run cut short still shows what it measured)."""
    jobs = [(T, K) for K in sizes for T in lengths]
    records = []
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), desc=task, unit="problem")
        except ImportError:
            bar = None
    for T, K in jobs:
        entries = build(task, T, K, dtype, methods, compare, monoid)
        for name, timing in time_entries(entries, repeats, memory).items():
            rec = {"task": task, "T": T, "size": K, "dtype": str(np.dtype(dtype)), "entry": name}
            rec.update(timing)
            records.append(rec)
            if echo is not None:
                echo(rec)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    for rec in records:
        others = [
            r["median_s"]
            for r in records
            if (r["T"], r["size"]) == (rec["T"], rec["size"]) and r["entry"] != rec["entry"]
        ]
        rec["speedup_vs_best_other"] = min(others) / rec["median_s"] if others else None
    return records


def crossovers(records) -> list[dict]:
    """For each pair of entries and size: the length from which `a` stays faster than `b`.

    Interpolated log-linearly between the two grid lengths where the order flips;
    `None` if `a` is not faster at the longest length, `0` if faster at every length.
    """
    out = []
    sizes = sorted({r["size"] for r in records})
    names = list(dict.fromkeys(r["entry"] for r in records))
    for K in sizes:
        table = {(r["entry"], r["T"]): r["median_s"] for r in records if r["size"] == K}
        lengths = sorted({r["T"] for r in records if r["size"] == K})
        for a in names:
            for b in names:
                if a == b:
                    continue
                ratio = [math.log(table[(a, T)] / table[(b, T)]) for T in lengths]
                if ratio[-1] >= 0:
                    at = None
                elif all(x < 0 for x in ratio):
                    at = 0  # faster at every length measured
                else:
                    i = max(i for i, x in enumerate(ratio) if x >= 0)
                    la, lb = math.log(lengths[i]), math.log(lengths[i + 1])
                    frac = ratio[i] / (ratio[i] - ratio[i + 1])
                    at = round(math.exp(la + frac * (lb - la)))
                out.append({"size": K, "faster": a, "than": b, "from_T": at})
    return out


def format_table(records) -> str:
    head = (
        f"{'T':>9} {'size':>5} {'entry':<18} {'compile s':>10} {'min ms':>10} "
        f"{'median ms':>10} {'max ms':>10} {'vs best other':>14} {'peak/out':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in records:
        sp = r["speedup_vs_best_other"]
        lines.append(
            f"{r['T']:>9} {r['size']:>5} {r['entry']:<18} {r['compile_s']:>10.3f} "
            f"{1e3 * r['min_s']:>10.3f} {1e3 * r['median_s']:>10.3f} {1e3 * r['max_s']:>10.3f} "
            f"{(f'{sp:.2f}x' if sp else '-'):>14} "
            f"{(f'{po:.2f}' if (po := r.get('peak_over_output')) else '-'):>9}"
        )
    return "\n".join(lines)


def format_crossovers(cross) -> str:
    lines = []
    for c in cross:
        if c["from_T"] is None:
            continue
        lines.append(
            f"size {c['size']}: {c['faster']} is faster than {c['than']} from T ~ {c['from_T']}"
        )
    return "\n".join(lines) or "(no entry overtakes another in this range)"


def save(records, cross, out: Path, task: str, plot: bool = True) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = task if task != "monoid" else f"monoid-{records[0].get('monoid', '')}".rstrip("-")
    path = out / f"{stem}.json"
    path.write_text(
        json.dumps({"device": device_info(), "records": records, "crossovers": cross}, indent=1)
    )
    paths = [path]
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        sizes = sorted({r["size"] for r in records})
        fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4), squeeze=False)
        for ax, K in zip(axes[0], sizes):
            for name in dict.fromkeys(r["entry"] for r in records):
                rs = sorted(
                    (r for r in records if r["entry"] == name and r["size"] == K),
                    key=lambda r: r["T"],
                )
                ax.loglog([r["T"] for r in rs], [r["median_s"] for r in rs], "o-", label=name)
            ax.set(title=f"{task}, size {K}", xlabel="sequence length T", ylabel="median time (s)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize="small")
        fig.suptitle(f"{device_info()['device']} ({device_info()['backend']})")
        fig.tight_layout()
        png = out / f"{stem}.png"
        fig.savefig(png, dpi=100)
        plt.close(fig)
        paths.append(png)
    return paths
