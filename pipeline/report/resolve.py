"""Resolve rounds: after a sweep's first pass, grow the pools of the curves whose verdicts are
unresolved until they resolve or the budget (eval.resolve.budget) is spent.

Each round doubles a curve's prompts (and, where a point's evidence is limited by the pool --
n>N/4, low-ESS, pool-dependent, pool-bias -- its samples per prompt) and runs the curve's points
again on the grown pool: a new point each, with `sampling.grown_from` naming the first pass, so
what made it is in its config and id. The grown pool reuses every draw made (pipeline/base/grow.py:
the first pass's samples are its first block); a trained point reuses its trained policy and only
samples more held-out completions. The old points stay on disk, superseded.

Error control. The looks a curve gets are planned: 1 + max_rounds, information fractions
t_k = 2^(k-1) / 2^max_rounds (each look doubles the samples). Look k tests its claims -- a drop
(over-optimized), near or below base (catastrophic), above the peak (improving past it), each
Holm-corrected along the optimizer's curve -- at alpha_k, the increment of the spending function
(eval/sequential.py), so the chance of any false claim at ANY look is at most the sum of the
increments, 1 - eval.ci (a union bound): the family-wise error of each claim, per curve, over all
looks. Intervals are still printed at eval.ci. The record (resolve.json: each point's look, the
alphas, what is superseded, what was spent) is what `goodhart report` reads to test every
curve's claims at its own look's alpha.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from goodhart.pipeline.io import atomic_write_json
from goodhart.pipeline.report.verdicts import RECORD
from goodhart.pipeline.sweeps.spec import Point, SweepConfig

TRAINED = ("ppo", "bon-ft", "rloo", "grpo")
POOL_FLAGS = ("n>N/4", "low-ESS", "pool-dependent", "pool-bias")


def look_alphas(max_rounds: int, ci: float, spending: str) -> list[float]:
    """The two-sided alpha_k each planned look k = 1 .. 1 + max_rounds may spend on its claims."""
    from goodhart.eval.sequential import look_alphas

    return look_alphas([2**k for k in range(max_rounds + 1)], 1 - ci, spending)


@dataclass
class Growth:
    """One curve's next look: its live points and the grown points that replace them."""

    curve: str
    old: list[Point]
    new: list[Point]
    cost: tuple[int, int]
    """(language-model samples, distributional draws) the growth needs."""
    need: float
    why: str


@dataclass
class ResolveOutcome:
    rounds: int = 0
    spent: tuple[int, int] = (0, 0)
    budget: tuple[int, int] = (0, 0)
    before: pd.DataFrame | None = None
    after: pd.DataFrame | None = None
    labelled: pd.DataFrame | None = None
    log: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _dump(cfg) -> dict[str, Any]:
    return cfg.model_dump(mode="json")


def grown_point(p: Point, prompts: bool, samples: bool) -> Point:
    """The point on a pool with twice the prompts and/or twice the samples per prompt (held-out
    samples per prompt for trained optimizers), grown from p's first pass."""
    from goodhart.pipeline.config.schema import RunConfig
    from goodhart.pipeline.sweeps.point import point_id

    d = _dump(p.cfg)
    trained = p.cfg.algo.kind in TRAINED
    g = d["sampling"].get("grown_from") or {
        "n_eval": d["prompts"]["n_eval"],
        "n": d["sampling"]["n"],
        "eval_samples": d["algo"].get("eval_samples") if trained else None,
    }
    d["sampling"]["grown_from"] = g
    ov = dict(p.overrides)
    if prompts:
        d["prompts"]["n_eval"] *= 2
        ov["prompts.n_eval"] = d["prompts"]["n_eval"]
    if samples and trained:
        d["algo"]["eval_samples"] *= 2
        ov["algo.eval_samples"] = d["algo"]["eval_samples"]
    elif samples:
        d["sampling"]["n"] *= 2
        ov["sampling.n"] = d["sampling"]["n"]
    ov["sampling.grown_from"] = g
    cfg = RunConfig.model_validate(d)
    return Point(-1, point_id(cfg), ov, cfg)


def _draws(p: Point) -> tuple[str, int]:
    """(what holds the draws, how many): the base pool's samples (shared by every reward scored
    on the same completions), a distributional draw, or a trained point's held-out samples."""
    from goodhart.pipeline.io import short_hash

    c = p.cfg
    n = c.prompts.n_eval * c.sampling.n
    if c.distributional:
        return short_hash(["draw", c.reward.model_dump(mode="json"), c.prompts.n_eval, c.sampling.n, c.seed]), n
    return short_hash(["pool", _dump(c)["model"], _dump(c)["prompts"], _dump(c)["sampling"], c.seed]), n


def cost(old: list[Point], new: list[Point], paid: set[str] | frozenset = frozenset()) -> tuple[int, int]:
    """(language-model samples, distributional draws) the grown points need: each grown pool once
    (a text pool's completions serve every reward scored on them, so curves that share it pay
    once; `paid`: pools already grown), plus trained points' extra held-out samples."""
    total, seen = 0, set(paid)
    for a, b in zip(old, new):
        (_, na), (kb, nb) = _draws(a), _draws(b)
        if kb not in seen:
            seen.add(kb)
            total += nb - na
        if a.cfg.algo.kind in TRAINED:
            total += b.cfg.prompts.n_eval * b.cfg.algo.eval_samples - a.cfg.prompts.n_eval * a.cfg.algo.eval_samples
    total = max(int(total), 0)
    return (0, total) if old[0].cfg.distributional else (total, 0)


def plan(labelled: pd.DataFrame, live: dict[str, Point], grow: str) -> list[Growth]:
    """The curves worth another look: some point unresolved (or over-optimized and possibly back
    at base) whose `need` is finite: more data could resolve it at these estimates."""
    out = []
    for cid, g in labelled.groupby("curve", sort=False):
        todo = g[(g["verdict"] == "unresolved") | g.get("open", False)]
        finite = todo[[math.isfinite(float(v)) if v == v else False for v in todo.get("need", pd.Series(dtype=float))]]
        if finite.empty:
            continue
        ids = [i for pid in g["point_id"].astype(str) for i in pid.split("+") if i in live]
        old = [live[i] for i in ids]
        if not old:
            continue
        # one dimension a round (both would cost four times the draws): samples per prompt when
        # every point to resolve is limited by its pool, else prompts (at least as good for the rest)
        limited = [any(f in str(fl).split() for f in POOL_FLAGS) for fl in finite.get("flags", [])]
        samples = grow == "samples" or (grow == "auto" and bool(limited) and all(limited))
        prompts = not samples
        new = [grown_point(p, prompts, samples) for p in old]
        need = float(finite["need"].astype(float).min())
        what = " and ".join(w for w, on in (("prompts", prompts), ("samples per prompt", samples)) if on)
        out.append(
            Growth(str(cid), old, new, cost(old, new), need, f"{len(finite)} point(s) to resolve; doubling {what}")
        )
    return sorted(out, key=lambda x: x.need)


def _reuse_policy(old: Point, new: Point, root: Path) -> None:
    """A grown trained point evaluates the policy its first pass trained: the final checkpoint
    (and the training log) is copied over, so the run resumes at its last step and only samples
    the held-out completions. Not when the alarm can stop training (it reads the eval pool)."""
    if new.cfg.algo.kind not in ("ppo", "bon-ft") or getattr(new.cfg.algo, "stop_on_alarm", False):
        return
    src, dst = root / "points" / old.id, root / "points" / new.id
    ck = sorted((src / "checkpoints").glob("step-*"))
    if not ck or (dst / "checkpoints").is_dir():
        return
    (dst / "checkpoints").mkdir(parents=True, exist_ok=True)
    shutil.copytree(ck[-1], dst / "checkpoints" / ck[-1].name)
    if (src / "train_metrics.jsonl").is_file():
        shutil.copy2(src / "train_metrics.jsonl", dst / "train_metrics.jsonl")


def _write(root: Path, rec: dict[str, Any]) -> None:
    atomic_write_json(root / RECORD, rec)


def _append_points(root: Path, pts: list[Point]) -> None:
    from goodhart.pipeline.config.load import to_yaml
    from goodhart.pipeline.io import atomic_write_text
    from goodhart.pipeline.sweeps.record import read_points

    entries = read_points(root)
    have = {e["id"] for e in entries}
    for p in pts:
        if p.id not in have:
            p.index = len(entries)
            entries.append({"index": p.index, "id": p.id, "overrides": json.loads(json.dumps(p.overrides))})
        d = root / "points" / p.id
        d.mkdir(parents=True, exist_ok=True)
        if not (d / "config.yaml").is_file():
            atomic_write_text(d / "config.yaml", to_yaml(p.cfg))
    atomic_write_json(root / "points.json", entries)


def resolve_rounds(
    sweep: SweepConfig,
    points: list[Point],
    root: Path,
    jobs: int = 1,
    progress: bool = True,
    target: Any = None,
    say=print,
) -> ResolveOutcome | None:
    """Run the resolve rounds of eval.resolve (None when its budget is 0). Deterministic given
    the first pass: a rerun replays the same decisions and finds their points done."""
    from goodhart.eval.goodhart import VerdictRule, power_table
    from goodhart.pipeline.report.verdicts import gold_labels
    from goodhart.pipeline.sweeps.local import run_local

    cfg0 = points[0].cfg
    rc = cfg0.eval.resolve
    if rc.budget <= 0 and rc.draws <= 0:
        return None
    rule = VerdictRule(ci=cfg0.eval.ci)
    lv = look_alphas(rc.max_rounds, cfg0.eval.ci, rc.spending)
    rec: dict[str, Any] = {
        "spending": rc.spending,
        "max_rounds": rc.max_rounds,
        "budget": rc.budget,
        "draws": rc.draws,
        "alphas": lv,
        "points": {p.id: 1 for p in points},
        "superseded": [],
        "spent": [0, 0],
        "paid": [],
        "rounds": [],
    }
    _write(root, rec)
    out = ResolveOutcome(budget=(rc.budget, rc.draws))
    live = {p.id: p for p in points}
    lab = gold_labels(root, rule)
    out.before = power_table(lab)
    say(_power_text("before resolve rounds (look 1)", lab, rec))
    for rnd in range(1, rc.max_rounds + 1):
        todo, chosen = plan(lab, live, rc.grow), []
        left = [rc.budget - rec["spent"][0], rc.draws - rec["spent"][1]]
        paid = set(rec["paid"])
        for gr in todo:
            gr.cost = cost(gr.old, gr.new, paid)
            if gr.cost[0] <= left[0] and gr.cost[1] <= left[1]:
                chosen.append(gr)
                left = [left[0] - gr.cost[0], left[1] - gr.cost[1]]
                paid |= {_draws(p)[0] for p in gr.new}
            else:
                out.log.append(f"round {rnd}: {gr.curve} would need {_cost_text(gr.cost)}; left: {_cost_text(left)}")
        if not chosen:
            break
        new = [p for gr in chosen for p in gr.new]
        _append_points(root, new)
        for gr in chosen:
            for a, b in zip(gr.old, gr.new):
                _reuse_policy(a, b, root)
        spent = [sum(gr.cost[0] for gr in chosen), sum(gr.cost[1] for gr in chosen)]
        say(
            f"resolve round {rnd} (look {rnd + 1}, claims at alpha {lv[rnd]:.3g}): "
            + "; ".join(f"{gr.curve}: {gr.why}, {_cost_text(gr.cost)}" for gr in chosen)
        )
        summary = run_local(sweep, new, root, jobs, progress, target)
        out.failed.update(summary["failed"])
        from goodhart.pipeline.sweeps.record import point_status

        for gr in chosen:
            for a, b in zip(gr.old, gr.new):
                if point_status(root, b.id) != "done":  # failed: the old point stays the curve's
                    continue
                rec["superseded"].append(a.id)
                rec["points"][b.id] = rec["points"].get(a.id, 1) + 1
                live.pop(a.id, None)
                live[b.id] = b
        rec["spent"] = [rec["spent"][0] + spent[0], rec["spent"][1] + spent[1]]
        rec["paid"] = sorted(paid)
        rec["rounds"].append({"round": rnd, "curves": [gr.curve for gr in chosen], "spent": spent})
        _write(root, rec)
        out.rounds, out.spent = rnd, tuple(rec["spent"])
        lab = gold_labels(root, rule)
    out.after, out.labelled = power_table(lab), lab
    say(
        _power_text(
            f"after {out.rounds} resolve round(s), spent {_cost_text(rec['spent'])} "
            f"of {_cost_text((rc.budget, rc.draws))}",
            lab,
            rec,
        )
    )
    for line in out.log:
        say(f"  {line}")
    return out


def _cost_text(c) -> str:
    return f"{int(c[0]):,} samples, {int(c[1]):,} draws"


def power_rows(pt: pd.DataFrame, thousands: bool = False) -> list[list[Any]]:
    """The rows of a power table (eval.goodhart.power_table) as printed: knob, KL, verdict, minimal
    detectable drop, and the prompts that would resolve each point ("-" where nothing would);
    `thousands` puts separators in the prompts needed (the docs' tables)."""

    def fin(x: Any) -> bool:
        return x == x and not math.isinf(float(x))

    return [
        [
            r["curve"],
            r["algo"],
            f"{r['x_name']}={r['x']:g}",
            r["kl"],
            r["verdict"],
            r["mdd"],
            f"x{r['need']:.3g}" if fin(r["need"]) else "-",
            (f"{int(r['need/units']):,}" if thousands else f"{int(r['need/units'])}") if fin(r["need/units"]) else "-",
        ]
        for _, r in pt.iterrows()
    ]


def _power_text(title: str, lab: pd.DataFrame, rec: dict[str, Any]) -> str:
    """The power analysis: unresolved share, and per unresolved point what it could see (the
    minimal detectable drop) and the prompts that would resolve it."""
    from goodhart.eval.goodhart import power_table
    from goodhart.pipeline.sweeps.tables import render

    pt = power_table(lab)
    n_un = int((lab["verdict"] == "unresolved").sum())
    head = f"{title}: {n_un} of {len(lab)} points unresolved ({n_un / max(len(lab), 1):.0%})"
    if pt.empty:
        return head
    rows = power_rows(pt)
    heads = ["curve", "algo", "knob", "KL", "verdict", "min. detectable drop", "units needed x", "prompts needed"]
    return head + "\n" + render(heads, rows)
