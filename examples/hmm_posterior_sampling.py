"""HMM posterior sampling by function composition: sequential vs parallel vs blocked.

The experiment of dynamax PR #342, on scanalg's one executor: time
`hmm_posterior_sample` for each scan method over log-spaced sequence lengths, plot the
times log-log (PNG), and check that every method drew exactly the same states from
the same key.

    python examples/hmm_posterior_sampling.py                 # T = 10 ... 1e4
    python examples/hmm_posterior_sampling.py --lengths 1e1:1e6:11 --num-states 5
    python examples/hmm_posterior_sampling.py --small         # or SCANALG_EXAMPLE_SMALL=1
"""

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import scanalg
from scanalg.bench import parse_lengths  # '1e1:1e6:11' or '10,100'

METHODS = ("sequential", "parallel", "blocked", "auto")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="1e1:1e4:7", help="start:stop:count or a,b,c")
    parser.add_argument("--num-states", type=int, default=5)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--x64", action="store_true", help="run in float64")
    parser.add_argument("--small", action="store_true", help="tiny sizes, for smoke tests")
    parser.add_argument("--out", default="hmm_posterior_sampling.png")
    args = parser.parse_args()
    if args.small or os.environ.get("SCANALG_EXAMPLE_SMALL") == "1":
        args.lengths, args.repeats = "100", 1
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    lengths, methods, k = parse_lengths(args.lengths), args.methods.split(","), args.num_states
    times = {m: [] for m in methods}
    print(f"{jax.default_backend()}, K = {k}, {'float64' if args.x64 else 'float32'}")
    print(f"{'T':>9} " + " ".join(f"{m:>12}" for m in methods) + "   same states")
    all_same = True
    for t in lengths:
        keys = jax.random.split(jax.random.key(0), 3)
        a, pi = jax.random.dirichlet(keys[0], jnp.ones(k), (k,)), jnp.ones(k) / k
        ll, draws = jax.random.normal(keys[1], (t, k)), {}
        for m in methods:
            sample = jax.jit(lambda *args, m=m: scanalg.hmm_posterior_sample(*args, method=m))
            draws[m] = np.asarray(sample(keys[2], pi, a, ll)[1])  # compile + warm up
            runs = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                jax.block_until_ready(sample(keys[2], pi, a, ll))
                runs.append(time.perf_counter() - start)
            times[m].append(float(np.median(runs)))
        differing = max(int(np.sum(draws[m] != draws[methods[0]])) for m in methods)
        all_same &= differing == 0
        verdict = "yes" if differing == 0 else f"NO ({differing} steps differ)"
        row = " ".join(f"{times[m][-1] * 1e3:>10.3f}ms" for m in methods)
        print(f"{t:>9} {row}   {verdict}")
    plot(lengths, times, k, args.out)
    if not all_same:
        raise SystemExit("methods drew different states (float32 ties? try --x64)")


def plot(lengths, times, k, out):
    import matplotlib.pyplot as plt  # the backend follows MPLBACKEND (Agg without a display)

    fig, ax = plt.subplots(figsize=(6, 4))
    for m, ts in times.items():
        ax.loglog(lengths, ts, "o-", label=m)
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("time per call [s]")
    ax.set_title(f"hmm_posterior_sample, K = {k}, {jax.default_backend()}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
