"""`python -m scanalg.bench.fit DIR [DIR ...]`: `Auto`'s accelerator threshold, fitted to
the JSON files that `python -m scanalg.bench ... --out DIR` wrote.

For every task and size measured with both `sequential` and `parallel`, it finds the
length from which `parallel` stays faster (the benchmark's crossover) and suggests the
largest of them as `scanalg.Auto(min_parallel_length=...)`.
"""

import argparse
import json
import math
from pathlib import Path

from ._run import crossovers


def parallel_crossovers(
    records: list[dict], faster: str = "parallel", than: str = "sequential"
) -> dict[tuple[str, int], int | None]:
    """`(task, size): T` from which `faster` stays faster than `than`: the shortest
    length measured if it is faster at every length, `None` if it is not faster at the
    longest one. Tasks or sizes without both entries are left out."""
    out = {}
    for task in dict.fromkeys(r["task"] for r in records):
        mine = [r for r in records if r["task"] == task and r["entry"] in (faster, than)]
        for c in crossovers(mine):
            if (c["faster"], c["than"]) != (faster, than):
                continue
            shortest = min(r["T"] for r in mine if r["size"] == c["size"])
            out[task, c["size"]] = shortest if c["from_T"] == 0 else c["from_T"]
    return out


def min_parallel_length(found: dict[tuple[str, int], int | None]) -> int | None:
    """The threshold for `Auto`: the largest crossover, rounded up to a power of two
    (`None` if `parallel` did not overtake `sequential` for some task and size)."""
    if not found or any(t is None for t in found.values()):
        return None
    return 2 ** math.ceil(math.log2(max(max(found.values()), 1)))


def load(paths: list[Path]) -> list[dict]:
    """The records of every `*.json` file under `paths` (files or folders)."""
    files = [f for p in paths for f in (sorted(p.glob("*.json")) if p.is_dir() else [p])]
    return [r for f in files for r in json.loads(f.read_text())["records"]]


def main(argv=None) -> int | None:
    p = argparse.ArgumentParser(prog="python -m scanalg.bench.fit", description=__doc__)
    p.add_argument("paths", type=Path, nargs="+", help="JSON files or folders of them")
    a = p.parse_args(argv)
    found = parallel_crossovers(load(a.paths))
    for (task, size), t in found.items():
        print(f"{task}, size {size}: parallel faster than sequential from T ~ {t}")
    n = min_parallel_length(found)
    if n is None:
        print("parallel does not overtake sequential everywhere: keep Auto's threshold")
    else:
        print(f"suggested: scanalg.Auto(min_parallel_length={n})")
    return n


if __name__ == "__main__":
    main()
