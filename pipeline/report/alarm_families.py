"""`goodhart alarm-bench --family`: the single-proxy alarm (eval/alarm.py) on families of curves that
differ from the one its rule was tuned on, read the way docs/alarm.md says.

A family is a BenchConfig (pipeline/report/alarm_bench.py) with a role:

* **dev**: the rule's choices were made on it (the tuning family, seeds 0-199, and the pool-size
  and text families beside it). Read as often as needed.
* **test**: never looked at while choosing; read once per alarm rule version, each reading
  recorded with its date and rule versions in docs/results.md. Sized to be read on 2 shared CPU
  cores (24-48 curves, 4 on the 262,144-sample pools): a family's figures carry its counts.

What a family reports (``family_row``), every figure over the family's graded points (gold
`over-optimized`/`catastrophic` positives, `improving`/`baseline` negatives; `unresolved` apart):
recall, the false-alarm rate on all negatives and on the negatives of *heavy-law* curves (a
heavy-tailed error: where an alarm is a claim about the tail, not a light law's chance
rejection), precision (positives among the graded points at `alarm`), the light laws' alarm rate,
and alarm-stop: walking each optimizer's curve up in KL, stop at the last point before the first
`alarm` and read its utility gain against gold's best on the curve (``alarm_stops``; the median,
over heavy-law curves where it stopped, of the regret over gold's best gain, per optimizer). On a
family of heavy-tailed *utilities* beside light errors every negative is the alarm's known blind
spot (one proxy cannot tell a heavy utility from a heavy error): its false alarms are reported
as that, not as the alarm's error rate.

The headline (``headline``) is over the test families: the worst family's recall, the false-alarm
rate on heavy-law negatives (pooled, and per family), precision -- not an average that the
light laws' many quiet points would dominate.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from goodhart.eval import metrics as M
from goodhart.eval.alarm import AlarmRule
from goodhart.pipeline.report.alarm_bench import NEGATIVE, POSITIVE, BenchConfig, levels


@dataclass(frozen=True)
class Family:
    name: str
    role: str
    """"dev" (the rule was chosen on it) or "test" (read once per rule version, docs/results.md)."""
    cfg: BenchConfig
    differs: str
    """How it differs from the tuning family (16 prompts x 4096, Gaussian utility, ratio 0.1-2)."""


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("tune", "dev", BenchConfig(), "the family every rule was tuned on (seeds 0-199)"),
        Family(
            "small-pool",
            "dev",
            BenchConfig(seeds=80, first_seed=2000, prompts=32, pool=512),
            "32 prompts x 512 (best-of-n to 128)",
        ),
        Family(
            "large-pool",
            "dev",
            BenchConfig(seeds=40, first_seed=2100, prompts=8, pool=32768),
            "8 prompts x 32,768 (best-of-n to 8,192)",
        ),
        Family(
            "text-0",
            "dev",
            BenchConfig(prompts=16, pool=1024, utility="vader"),
            "VADER text utility (bounded, three-peaked), text pool 0",
        ),
        Family(
            "pool-256",
            "test",
            BenchConfig(seeds=48, first_seed=5000, prompts=64, pool=256),
            "64 prompts x 256 (best-of-n to 64)",
        ),
        Family(
            "pool-262k",
            "test",
            BenchConfig(seeds=4, first_seed=5200, prompts=4, pool=262_144),
            "4 prompts x 262,144 (best-of-n to 65,536)",
        ),
        Family(
            "scale",
            "test",
            BenchConfig(seeds=24, first_seed=5300, ratio=(0.3, 6.0), unit=50.0, prompt_sd=5.0),
            "error/utility ratio 0.3-6, rewards in units of 50, prompt means spread 5x wider",
        ),
        Family(
            "bounded-utility",
            "test",
            BenchConfig(seeds=24, first_seed=5500, utility_law="bounded"),
            "a bounded utility: uniform or beta(2, 5) within a prompt",
        ),
        Family(
            "skewed-utility",
            "test",
            BenchConfig(seeds=24, first_seed=5700, prompts=24, pool=2048, utility_law="gumbel"),
            "a light, skewed (Gumbel) utility; 24 prompts x 2048",
        ),
        Family(
            "heavy-utility",
            "test",
            BenchConfig(seeds=24, first_seed=5900, utility_law="heavy", errors="light"),
            "heavy-tailed, skewed utilities (t, lognormal, pareto) beside light errors: the blind spot",
        ),
        Family(
            "repeated-rewards",
            "test",
            BenchConfig(seeds=24, first_seed=6300, repeats=True),
            "each prompt's samples drawn with replacement from 4096 distinct texts (37% repeats, as text pools have)",
        ),
        Family(
            "text-3",
            "test",
            BenchConfig(seeds=24, first_seed=6100, prompts=16, pool=1024, utility="vader", text_seed=3),
            "VADER text utility on a fresh text pool (seed 3) and fresh seeds",
        ),
    )
}


def pick(spec: str) -> list[Family]:
    """`dev`, `test`, `all`, or comma-separated family names."""
    if spec in ("dev", "test"):
        return [f for f in FAMILIES.values() if f.role == spec]
    if spec == "all":
        return list(FAMILIES.values())
    names = [n.strip() for n in spec.split(",") if n.strip()]
    bad = [n for n in names if n not in FAMILIES]
    if bad or not names:
        from goodhart.pipeline.errors import UsageError

        raise UsageError(
            f"alarm-bench --family: unknown family {', '.join(bad) or repr(spec)}; expected dev, test, all or "
            f"names from {', '.join(FAMILIES)}"
        )
    return [FAMILIES[n] for n in names]


def with_rule(f: Family, rule: AlarmRule, seeds: int | None = None) -> BenchConfig:
    """The family's config under ``rule`` (and, for a small look, fewer seeds)."""
    over = {"rule": rule} | ({"seeds": seeds} if seeds is not None else {})
    return dataclasses.replace(f.cfg, **over)


# ============================================================================================
# Alarm-stop: the last point before the first alarm, against gold's best
# ============================================================================================
def alarm_stops(df: pd.DataFrame, fired: np.ndarray) -> pd.DataFrame:
    """Per (curve, optimizer), walking up in KL: the stop (the last point before the first
    `alarm`; the base policy, gain 0, when the first point alarms; the last point when none
    does), its utility gain, gold's best utility gain on the curve (the base's 0 included) and the
    regret best - stop (``rel_regret``: over the best gain, when it is positive)."""
    d = df.assign(_fired=np.asarray(fired, dtype=bool))
    rows = []
    for (curve, algo), g in d.groupby(["error_law", "algo"], sort=False):
        g = g.sort_values(M.KL)
        u = g[M.GAIN_UTILITY].to_numpy(dtype=float)
        f = g["_fired"].to_numpy()
        first = int(np.argmax(f)) if f.any() else len(g)
        stop = u[first - 1] if first > 0 else 0.0
        best = max(0.0, float(np.max(u)))
        rows.append(
            {
                "curve": curve,
                "algo": algo,
                "light": bool(g["light"].iloc[0]),
                "stopped": bool(f.any()),
                "stop_utility": float(stop),
                "best_utility": best,
                "regret": best - float(stop),
                "rel_regret": (best - float(stop)) / best if best > 0 else math.nan,
            }
        )
    return pd.DataFrame(rows)


# ============================================================================================
# One family's figures, and the headline over families
# ============================================================================================
def family_row(df: pd.DataFrame, rule: AlarmRule, fam: Family) -> dict:
    """A family's figures (the module docstring), from its points as run_bench returns them."""
    fired = (levels(df, rule)[0] == "alarm").to_numpy()
    gold = df["verdict"].to_numpy()
    pos, neg = np.isin(gold, POSITIVE), np.isin(gold, NEGATIVE)
    light = df["light"].to_numpy(dtype=bool)
    heavy_utility = ~df["utility_light"].to_numpy(dtype=bool) if "utility_light" in df else np.zeros(len(df), bool)
    unres = gold == "unresolved"
    hneg = neg & ~light
    blind = neg & light & heavy_utility  # light error beside a heavy utility: one proxy cannot tell

    def rate(mask: np.ndarray) -> float:
        return float(fired[mask].mean()) if mask.any() else math.nan

    graded_fired = fired & (pos | neg)
    stops = alarm_stops(df, fired)
    heavy = stops[~stops["light"]]

    def regret(algo: str) -> str:
        g = heavy[(heavy["algo"] == algo) & heavy["stopped"]]
        return f"{g['rel_regret'].median():.2f}" if len(g) else "-"

    return {
        "family": fam.name,
        "role": fam.role,
        "curves": int(df["seed"].nunique()),
        "points": len(df),
        "positives": int(pos.sum()),
        "negatives": int(neg.sum()),
        "heavy-law negatives": int(hneg.sum()),
        "unresolved": int(unres.sum()),
        "recall": rate(pos),
        "false alarms": rate(neg & ~blind),
        "FA heavy-law": rate(hneg),
        "precision": float(pos[graded_fired].mean()) if graded_fired.any() else math.nan,
        "light laws at alarm": rate(light & ~heavy_utility),
        "unresolved at alarm": rate(unres),
        "blind spot FA": rate(blind),
        "heavy curves stopped": f"{int(heavy['stopped'].sum())}/{len(heavy)}",
        "stop regret bon|tilt": f"{regret('bon')}|{regret('tilt')}",
    }


def headline(rows: list[dict]) -> list[str]:
    """The lines docs/alarm.md quotes: over the test families (else every family given)."""
    t = [r for r in rows if r["role"] == "test"] or rows
    scored = [r for r in t if r["positives"]]
    lines = []
    if scored:
        worst = min(scored, key=lambda r: r["recall"])
        lines.append(
            f"worst family's recall: {worst['recall']:.3f} ({worst['family']}, {worst['positives']} positives)"
        )
    hn = [r for r in t if r["heavy-law negatives"]]
    if hn:
        pooled = sum(r["FA heavy-law"] * r["heavy-law negatives"] for r in hn) / sum(
            r["heavy-law negatives"] for r in hn
        )
        per = ", ".join(f"{r['family']} {r['FA heavy-law']:.3f}" for r in hn)
        lines.append(f"false alarms on heavy-law negatives: {pooled:.3f} pooled ({per})")
    pr = [r for r in t if r["precision"] == r["precision"]]
    if pr:
        lines.append(
            "precision (graded points at alarm): " + ", ".join(f"{r['family']} {r['precision']:.3f}" for r in pr)
        )
    blind = [r for r in t if r["blind spot FA"] == r["blind spot FA"]]
    for r in blind:
        lines.append(
            f"blind spot ({r['family']}): alarm on {r['blind spot FA']:.3f} of the gold negatives where a heavy-tailed "
            "utility, not the error, makes the proxy heavy (no single-proxy statistic can tell them apart: use a "
            "held-out proxy)"
        )
    return lines
