"""`goodhart report PROBE_DIR`: the modes of one probe side by side. One plot of the reward
distributions (random, base, optimized) with the base policy's quantiles marked; the tail
verdicts of random and base in one table; the optimized sequences and the mixture table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from goodhart.pipeline.io import atomic_write_text, read_json
from goodhart.pipeline.probe.config import MODES
from goodhart.pipeline.probe.optimize import render as render_optimize
from goodhart.pipeline.probe.run import MARKER, QUANTILES, text_table

SAMPLED = ("random", "base")


@dataclass
class ProbeReport:
    root: Path
    text: str
    files: list[Path] = field(default_factory=list)


def is_probe_dir(path: Path) -> bool:
    return (path / MARKER).is_file()


def _interval(v: float, iv: list[float]) -> str:
    return f"{v:+.3f} [{iv[0]:+.3f}, {iv[1]:+.3f}]"


def verdicts_side_by_side(results: dict[str, dict]) -> str:
    """Rows: the distribution and every tail statistic; columns: the sampled modes present."""
    modes = [m for m in SAMPLED if m in results]
    rows = []

    def row(name: str, get) -> None:
        rows.append([name, *[get(results[m]) for m in modes]])

    row("tail verdict", lambda r: r["tails"]["verdict"].upper())
    row("n", lambda r: r["distribution"]["n"])
    for k in ("mean", "std", *[f"q{q:g}" for q in QUANTILES], "max"):
        row(k, lambda r, k=k: f"{r['distribution'][k]:.4g}")
    ran = [m for m in modes if results[m]["tails"]["verdict"] != "not run"]
    if ran:
        na = "-"
        t = lambda r, f: f(r["tails"]) if r["tails"]["verdict"] != "not run" else na  # noqa: E731
        row("exp Q-Q slope growth db/du", lambda r: t(r, lambda x: _interval(x["qq_growth"], x["qq_growth_interval"])))
        row("GPD xi (u = q0.95)", lambda r: t(r, lambda x: _interval(x["gpd_xi"], x["gpd_xi_interval"])))
        row("Hill gamma (reported only)", lambda r: t(r, lambda x: f"{x['hill_gamma']:.3f}"))
    return text_table(["", *modes], rows)


def probe_report(root: Path, out_dir: Path | None = None) -> ProbeReport:
    from goodhart.eval.plots_probe import reward_distributions

    if not is_probe_dir(root):
        raise FileNotFoundError(f"{root} is not a probe directory (no {MARKER}); run `goodhart probe ...` first")
    results = {m: read_json(root / f"{m}.json") for m in MODES if (root / f"{m}.json").is_file()}
    if not results:
        raise FileNotFoundError(
            f"{root} holds no probe results yet; run `goodhart probe CONFIG --mode random|base|optimize`"
        )
    out_dir = out_dir or root / "report"
    marker = read_json(root / MARKER)
    samples = {m: np.load(root / f"{m}.npz")["rewards"] for m in SAMPLED if (root / f"{m}.npz").is_file()}
    opt = results.get("optimize")
    optimized = [r["reward"] for r in opt["best"]] if opt else []
    if "base" in results:
        base_dist = results["base"]["distribution"]
    elif opt:
        base_dist = opt["reference"]["distribution"]
    else:
        base_dist = None
    quantiles = {f"base q{q:g}": base_dist[f"q{q:g}"] for q in QUANTILES} if base_dist else {}
    rep = ProbeReport(root, "")
    reward_name = marker["reward"].get("path") or marker["reward"].get("type")
    rep.files.append(
        reward_distributions(
            samples, optimized, quantiles, out_dir / "reward_distributions.png", f"reward {reward_name}"
        )
    )
    parts = [f"probe of reward {reward_name!r} after prompt {marker['prompt']!r}: {', '.join(results)}"]
    if any(m in results for m in SAMPLED):
        parts += ["", verdicts_side_by_side(results)]
    if opt:
        parts += ["", render_optimize(opt)]
    rep.text = "\n".join(parts)
    md = [f"# Probe `{root.name}`", "", "```", rep.text, "```", "", "![reward distributions](reward_distributions.png)"]
    for m in SAMPLED:
        if (root / f"tails_{m}.png").is_file():
            md.append(f"![tails of {m}](../tails_{m}.png)")
    rep.files.append(atomic_write_text(out_dir / "report.md", "\n".join(md) + "\n"))
    return rep
