"""Reference curves for the arena's trends in N (docs/arena.md): the expected utility gain at a
matched KL, and at the pool argmax, for pools of 2^12 up to 2^20 draws, each averaged over
enough independent pools (prompts) that its interval is tight -- what the arena's two pool sizes
and five seeds estimate, at larger N.

    python examples/arena_reference.py                                  # N = 2^12, 2^16, 2^20
    python examples/arena_reference.py --log2n 10 14 --samples 262144   # smaller, faster

For each error law (V ~ N(0, 1), X independent) and column (the KL tilt, chi^2, Hellinger,
best-of-n with a real n, the rank transform's KL tilt): mean utility gain [95% t interval over
pools] at each KL target and at the argmax. `--samples` draws per N (pools = samples / N, at
least `--min-pools`).
"""

from __future__ import annotations

import argparse

import numpy as np

from goodhart.eval import matched as Mt
from goodhart.eval.bon import best_of_n_power, n_for_kl
from goodhart.eval.bootstrap import t_ci
from goodhart.rewards.laws import Law
from goodhart.rewards.transform import Transform

LAWS = {
    "gaussian": Law("gaussian"),
    "student_t(df=3)": Law("student_t", df=3.0),
    "lognormal(sigma=1)": Law("lognormal", sigma=1.0),
    "pareto(alpha=1.5)": Law("pareto", alpha=1.5),
}
COLUMNS = ("kl", "chi2", "hellinger", "bon", "rank")


def gains(column: str, r: np.ndarray, v: np.ndarray, target: float) -> np.ndarray:
    """Per-pool utility gain of the column's optimum at KL `target` (past log N: the argmax)."""
    base = v.mean(1)
    if column == "bon":
        est = best_of_n_power(r, n_for_kl(r.shape[1], target, r), v=v)
        return est["v"] - base
    if column == "rank":
        r = Transform("rank").fit(r)(r)
        column = "kl"
    return Mt.optimum_at(r, Mt.coef_for_kl(r, target, column), column, v=v)["v"] - base


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log2n", type=int, nargs="+", default=[12, 16, 20], help="pool sizes, as powers of 2")
    ap.add_argument("--samples", type=int, default=2**22, help="draws per pool size (pools = samples / N)")
    ap.add_argument("--min-pools", type=int, default=16, help="at least this many pools per size (drawn in batches)")
    ap.add_argument("--targets", type=float, nargs="+", default=[1.0, 4.0], help="KL targets (the argmax is added)")
    ap.add_argument("--laws", nargs="+", default=list(LAWS), choices=list(LAWS))
    ap.add_argument("--columns", nargs="+", default=list(COLUMNS), choices=list(COLUMNS))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    rows = []
    targets = [*a.targets, float("inf")]
    print(
        f"{'law':<20} {'column':<10} {'N':>9} "
        + " ".join(f"{('KL=' + format(t, 'g')) if np.isfinite(t) else 'argmax':>22}" for t in targets)
    )
    for name in a.laws:
        for k in a.log2n:
            N = 2**k
            P = max(a.min_pools, a.samples // N)
            batch = max(1, min(P, 2**22 // N))  # pools drawn together: memory stays ~2^22 draws
            per: dict[tuple[str, float], list[np.ndarray]] = {}
            for b0 in range(0, P, batch):
                rng = np.random.default_rng([a.seed, k, list(LAWS).index(name), b0])
                v = rng.normal(size=(min(batch, P - b0), N))
                r = v + LAWS[name].sample(v.shape, rng)
                for col in a.columns:
                    for t in targets:
                        g = gains(col, r, v, t if np.isfinite(t) else 2.0 * np.log(N) + 10)
                        per.setdefault((col, t), []).append(g)
            for col in a.columns:
                cells = []
                for t in targets:
                    m, lo, hi = t_ci(np.concatenate(per[(col, t)]))
                    rows.append(
                        {"law": name, "column": col, "N": N, "pools": P, "target": t, "mean": m, "lo": lo, "hi": hi}
                    )
                    cells.append(f"{m:7.3f} [{lo:6.3f}, {hi:6.3f}]")
                print(f"{name:<20} {col:<10} {N:>9,} " + " ".join(f"{c:>22}" for c in cells), flush=True)
    return rows


if __name__ == "__main__":
    main()
