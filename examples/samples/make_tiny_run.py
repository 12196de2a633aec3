"""Write tiny_run.csv: a made-up run in the `goodhart analyze` schema (docs/integrations.md).

Five checkpoints (steps 0..400) of a policy trained on a proxy = utility + a heavy-tailed error,
8 prompts x 16 samples each, and 64 base-policy samples per prompt. The utility rises to step 200
and falls back below the base by step 400, while more and more samples find a hack worth a huge
proxy reward: catastrophic Goodhart, by construction. Deterministic (seed 0):

    python examples/samples/make_tiny_run.py      # rewrites examples/samples/tiny_run.csv
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PROMPTS = 8
BASE_SAMPLES = 64
SAMPLES = 16
# step: (utility mean, share of samples that found the hack, KL to the base in nats)
CHECKPOINTS = {
    0: (0.0, 0.0, 0.0),
    100: (0.35, 0.0, 0.4),
    200: (0.6, 0.05, 1.2),
    300: (0.3, 0.3, 3.0),
    400: (-0.3, 0.6, 6.0),
}


def rows(rng: np.random.Generator) -> list[str]:
    out = ["point,prompt,proxy,utility,kl,completion"]
    for j in range(PROMPTS):
        u = rng.normal(0.0, 1.0, BASE_SAMPLES)
        e = rng.standard_t(3, BASE_SAMPLES) * 0.5
        out += [f"base,p{j},{u[i] + e[i]:.5f},{u[i]:.5f},0,base sample {i}" for i in range(BASE_SAMPLES)]
    for step, (mu, hack, kl) in CHECKPOINTS.items():
        for j in range(PROMPTS):
            u = rng.normal(mu, 1.0, SAMPLES)
            e = rng.standard_t(3, SAMPLES) * 0.5
            found = rng.random(SAMPLES) < hack
            e[found] += 10.0 + 5.0 * rng.pareto(1.5, int(found.sum()))  # the hack: a huge proxy, no utility
            k = rng.gamma(4.0, kl / 4.0, SAMPLES) if kl > 0 else np.zeros(SAMPLES)
            out += [
                f"{step},p{j},{u[i] + e[i]:.5f},{u[i]:.5f},{k[i]:.5f},{'hack' if found[i] else 'text'} {i}"
                for i in range(SAMPLES)
            ]
    return out


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    (here / "tiny_run.csv").write_text("\n".join(rows(np.random.default_rng(0))) + "\n")
