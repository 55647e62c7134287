"""Train a linear-chain CRF tagger on synthetic data, decode it, and time it.

Tags follow a Markov chain; each word is drawn from a tag-dependent distribution. The
CRF (a word-to-tag score table and a tag-transition matrix) is trained by gradient
descent (optax) on the log-likelihood of a ragged batch of sentences, then decodes
with `argmax` and `kbest`, reports the posterior entropy per sentence, and times
`log_partition` sequentially and in parallel. Needs `pip install optax`.
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from scanalg import crf

SMALL = bool(os.environ.get("SCANALG_EXAMPLE_SMALL"))
K, V = 4, 30  # tags, vocabulary
rng = np.random.default_rng(0)

# Synthetic data: sticky tag transitions, each tag emitting mostly its own words.
true_trans = 0.7 * np.eye(K) + 0.3 / K
true_emit = rng.dirichlet(np.full(V, 0.1), size=K)


def sentences(n):
    lengths = rng.integers(5, 20, size=n)
    tags, words = [], []
    for length in lengths:
        z = [rng.integers(K)]
        for _ in range(length - 1):
            z.append(rng.choice(K, p=true_trans[z[-1]]))
        tags += z
        words += [rng.choice(V, p=true_emit[t]) for t in z]
    return jnp.asarray(lengths), jnp.asarray(tags), jnp.asarray(words)


train, test = sentences(40 if SMALL else 200), sentences(10)


def potentials(params, words):
    return params["trans"], params["emit"][words]  # (K, K) and (T, K)


def loss(params, lengths, tags, words):
    """Mean negative log-likelihood: log Z minus the score of the gold tags."""
    trans, unaries = potentials(params, words)
    log_z = crf.log_partition(trans, unaries, lengths=lengths)
    starts = jnp.zeros(tags.shape[0], bool).at[jnp.cumsum(lengths) - lengths].set(True)
    gold = jnp.sum(unaries[jnp.arange(tags.shape[0]), tags])
    gold += jnp.sum(jnp.where(starts[1:], 0.0, trans[tags[:-1], tags[1:]]))
    return (jnp.sum(log_z) - gold) / tags.shape[0]


params = {"trans": jnp.zeros((K, K)), "emit": jnp.zeros((V, K))}
optimiser = optax.sgd(learning_rate=1.0, momentum=0.9)
state = optimiser.init(params)


@jax.jit
def step(params, state, batch):
    value, grads = jax.value_and_grad(loss)(params, *batch)
    updates, state = optimiser.update(grads, state)
    return optax.apply_updates(params, updates), state, value


for i in range(30 if SMALL else 100):
    params, state, value = step(params, state, train)
print(f"final training loss: {float(value):.3f} nats per tag")

# Decoding: the best path of each test sentence, and the three best of the first.
lengths, tags, words = test
trans, unaries = potentials(params, words)
best = crf.argmax(trans, unaries, lengths=lengths)
print(f"test accuracy of argmax: {float(jnp.mean(best.paths == tags)):.2f}")
first = int(lengths[0])
top = crf.kbest(trans, unaries[:first], k=3)
for score, path in zip(top.scores, top.paths):
    print(f"  score {float(score):7.2f}: {''.join(map(str, path.tolist()))}")
print(f"  true tags     : {''.join(map(str, tags[:first].tolist()))}")
entropy = crf.entropy(trans, unaries, lengths=lengths)
print("posterior entropy per sentence (nats):", np.round(np.asarray(entropy), 2))

# Timing one long sentence (compile first; then the median of a few runs).
long_words = jnp.asarray(rng.integers(V, size=5_000 if SMALL else 50_000))
long_trans, long_unaries = potentials(params, long_words)
for method in ["sequential", "parallel"]:
    fn = jax.jit(lambda t, u, m=method: crf.log_partition(t, u, method=m))
    fn(long_trans, long_unaries).block_until_ready()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        fn(long_trans, long_unaries).block_until_ready()
        times.append(time.perf_counter() - start)
    print(f"log_partition, T={long_words.shape[0]}, {method}: {1e3 * np.median(times):.2f} ms")
