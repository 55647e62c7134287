"""Tracking a target in 2-D with a constant-velocity Kalman model and missing radar returns.

State z = (x, y, vx, vy); we observe noisy positions, 20% of the returns are lost (NaN
rows). Filter, RTS smoother, 100 posterior trajectories, a plot (kalman_tracking.png),
and the time of each scan method: all give the same answer, executed differently.

Run: python examples/kalman_tracking.py      (SCANALG_EXAMPLE_SMALL=1 for a tiny run)
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import scanalg

SMALL = bool(os.environ.get("SCANALG_EXAMPLE_SMALL"))
T = 200 if SMALL else 2000
# A small run times only "parallel" (main() runs the default, "auto", first anyway).
METHODS = ("parallel",) if SMALL else ("sequential", "parallel", "blocked", "auto")
REPEATS = 1 if SMALL else 5


def tracking_model(dt=0.1, q=0.5, r=0.3):
    """Constant velocity: positions integrate velocities; white-noise accelerations."""
    F = np.block([[np.eye(2), dt * np.eye(2)], [np.zeros((2, 2)), np.eye(2)]])
    Q = q * np.block([[dt**3 / 3 * np.eye(2), dt**2 / 2 * np.eye(2)],
                      [dt**2 / 2 * np.eye(2), dt * np.eye(2)]])  # fmt: skip
    return scanalg.LGSSMParams(
        initial_mean=np.zeros(4, np.float32),
        initial_cov=np.eye(4, dtype=np.float32),
        dynamics_weights=F.astype(np.float32),
        dynamics_cov=Q.astype(np.float32),
        emissions_weights=np.eye(2, 4, dtype=np.float32),
        emissions_cov=np.full(2, r**2, np.float32),  # a diagonal emission covariance
    )


def simulate(params, key):
    """A true trajectory and its observations, with 20% of the rows missing."""
    k1, k2, k3 = jax.random.split(key, 3)
    noise = jax.random.multivariate_normal(k1, jnp.zeros(4), params.dynamics.cov, (T,))
    step = lambda z, w: (params.dynamics.weights @ z + w,) * 2  # noqa: E731
    _, states = jax.lax.scan(step, jnp.array([0.0, 0.0, 1.0, 0.5]), noise)
    obs = states[:, :2] + jnp.sqrt(params.emissions.cov) * jax.random.normal(k2, (T, 2))
    missing = jax.random.uniform(k3, (T,)) < 0.2
    return states, jnp.where(missing[:, None], jnp.nan, obs)


def draw(key, params, emissions, method="auto"):  # 100 posterior trajectories
    return scanalg.lgssm_posterior_sample(key, params, emissions, method=method, num_samples=100)


def timed(fn, *args, repeats=REPEATS):
    """(compile seconds, median run seconds) of jax.jit(fn); the first call compiles."""
    jitted, runs = jax.jit(fn), []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        jax.block_until_ready(jitted(*args))
        runs.append(time.perf_counter() - start)
    return runs[0], float(np.median(runs[1:]))


def main():
    params = tracking_model()
    truth, emissions = simulate(params, jax.random.key(0))
    post = jax.jit(scanalg.lgssm_smoother)(params, emissions)
    samples = jax.jit(draw)(jax.random.key(1), params, emissions)
    rmse = lambda m: float(jnp.sqrt(jnp.mean((m[:, :2] - truth[:, :2]) ** 2)))  # noqa: E731
    print(f"T = {T}, {int(jnp.isnan(emissions[:, 0]).sum())} missing observations, "
          f"log p(y) = {float(post.marginal_loglik):.2f}")  # fmt: skip
    print(f"position RMSE: filtered {rmse(post.filtered_means):.3f}, "
          f"smoothed {rmse(post.smoothed_means):.3f}")  # fmt: skip

    print(f"{'method':>10} {'filter':>9} {'smoother':>9} {'sampler':>9}  (ms)  {'compile s':>9}")
    for method in METHODS:
        cf, f = timed(lambda p, y: scanalg.lgssm_filter(p, y, method=method), params, emissions)
        _, s = timed(lambda p, y: scanalg.lgssm_smoother(p, y, method=method), params, emissions)
        _, d = timed(lambda k, p, y: draw(k, p, y, method), jax.random.key(1), params, emissions)
        print(f"{method:>10} {1e3 * f:9.2f} {1e3 * s:9.2f} {1e3 * d:9.2f}  {cf:15.2f}")

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for path in samples[:, :, :2]:
        ax.plot(path[:, 0], path[:, 1], color="tab:blue", alpha=0.05, lw=0.8)
    ax.plot(truth[:, 0], truth[:, 1], "k-", lw=1.5, label="true track")
    ax.plot(emissions[:, 0], emissions[:, 1], ".", color="tab:orange", ms=3, label="observations")
    ax.plot(post.smoothed_means[:, 0], post.smoothed_means[:, 1], "r--", lw=1.2,
            label="smoothed mean")  # fmt: skip
    ax.plot([], [], color="tab:blue", label="100 posterior samples")
    ax.set(xlabel="x", ylabel="y", title="Constant-velocity tracking, 20% missing returns")
    ax.legend(loc="best", fontsize=8)
    fig.savefig("kalman_tracking.png", dpi=120, bbox_inches="tight")
    print("wrote kalman_tracking.png")


if __name__ == "__main__":
    main()
