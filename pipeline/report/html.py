"""The report a researcher hands around: the study's figures (Gao fits over the points against
KL and sqrt KL, the proxy-vs-utility frontier, training curves), a header saying what was
run, and one self-contained report.html (figures embedded as base64 PNG) beside report.md.

`goodhart report` (report/verdicts.py) calls `report_figures` then `write_html`; everything here
reads the sweep directory and the labelled table, never MLflow.
Imports: config, io, sweeps.point, sweeps.tables, goodhart.eval.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from goodhart.eval import metrics as M
from goodhart.pipeline.io import atomic_write_text
from goodhart.pipeline.report.legend import POOL_BOUND
from goodhart.pipeline.sweeps.point import TRAIN_LOG
from goodhart.pipeline.sweeps.tables import ci_text, knob_text
from goodhart.pipeline.sweeps.tables import point_flags as trust_flags

FIGURES = ("gao_fits_kl.png", "gao_fits_sqrt_kl.png", "frontier.png", "training_curves.png")


# ---------------------------------------------------------------------------------------------
# What the sweep ran
# ---------------------------------------------------------------------------------------------
def _point_configs(root: Path, labelled: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for pid in labelled.get("point_id", pd.Series(dtype=str)).dropna().unique():
        f = root / "points" / str(pid) / "config.yaml"
        if f.is_file():
            try:
                tree = (
                    yaml.load(f.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
                )  # libyaml: a sweep has hundreds of points
            except (OSError, ValueError, yaml.YAMLError):  # torn: the summary skips it
                continue
            if isinstance(tree, dict):
                out.append(tree)
    return out


def _uniq(values) -> str:
    seen = list(dict.fromkeys(str(v) for v in values if v is not None and str(v) != ""))
    return ", ".join(seen) if seen else "-"


def sweep_header(root: Path, labelled: pd.DataFrame) -> list[tuple[str, str]]:
    """(what, value) lines: model, utility, proxy, prompts, pool size, seeds, optimizers."""
    cfgs = _point_configs(root, labelled)

    def model(c):
        m = c.get("model", {}) or {}
        return m.get("path") or m.get("name") if isinstance(m, dict) else m

    def utility(c):
        r = c.get("reward", {}) or {}
        u = r.get("utility")
        if isinstance(u, dict):
            return u.get("name") or u.get("type")
        return u or r.get("type")

    def prompts(c):
        p = c.get("prompts", {}) or {}
        return f"{p.get('source', '?')}: {p.get('n_train', '?')} train / {p.get('n_eval', '?')} eval"

    def pool(c):
        s = c.get("sampling", {}) or {}
        return f"{s.get('n', '?')} samples per eval prompt, {s.get('max_new_tokens', '?')} new tokens"

    seeds = sorted({c.get("seed") for c in cfgs if c.get("seed") is not None} | _algo_seeds(cfgs))
    return [
        ("sweep", root.name),
        ("model", _uniq(model(c) for c in cfgs)),
        ("utility (true reward)", _uniq(utility(c) for c in cfgs)),
        ("proxy = utility + error", _uniq(labelled["error_law"])),
        ("optimizers", _uniq(labelled["algo"])),
        ("prompts", _uniq(prompts(c) for c in cfgs)),
        ("base pool", _uniq(pool(c) for c in cfgs)),
        ("seeds", ", ".join(str(s) for s in seeds) or "-"),
        ("points", f"{len(labelled)} finished"),
    ]


def _coverage_html(rep) -> list[str]:
    """An unfinished sweep says so under the verdict, with the points it lacks."""
    cov = getattr(rep, "coverage", None)
    if cov is None or cov.complete:
        return []
    items = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in cov.items())
    return [f"<p class='verdict'><b>{html.escape(cov.headline())}:</b></p><ul>{items}</ul>"]


def _holdout_html(rep) -> list[str]:
    """With a held-out proxy, its estimate first (report/holdout.py): assumption, peaks and turns,
    agreement with gold, the table."""
    est = getattr(rep, "estimate", None)
    if est is None:
        return []
    from goodhart.pipeline.report.holdout import holdout_table, summary_lines, tails_lines

    items = "".join(f"<li>{html.escape(s)}</li>" for s in summary_lines(rep.labelled, est))
    tails = "".join(f"<li>{html.escape(s.lstrip('- '))}</li>" for s in tails_lines(rep.holdout_tails))
    return [
        "<h2>Held-out estimate (no gold)</h2>",
        f"<ul>{items}</ul>",
        f"<pre>{html.escape(holdout_table(rep.labelled))}</pre>",
        *([f"<p>Error tail without gold (proxy &minus; holdout):</p><ul>{tails}</ul>"] if tails else []),
    ]


def _algo_seeds(cfgs) -> set:
    return {c["algo"]["seed"] for c in cfgs if isinstance(c.get("algo"), dict) and c["algo"].get("seed") is not None}


# ---------------------------------------------------------------------------------------------
# Flags carried into every table
# ---------------------------------------------------------------------------------------------
def point_flags(r: dict[str, Any]) -> str:
    """`low-ESS`, `pool-dependent` (sweeps/tables.point_flags), `pool-bound` (a pool-based KL near
    its ceiling log N: the pool size, not the optimizer, sets it), plus any other flag the verdict
    logic put in a `flags` column (e.g. unresolved); each flag once."""
    out = trust_flags(r)
    kl, kl_max = r.get(M.KL), r.get(M.KL_MAX)
    if _finite(kl) and _finite(kl_max) and kl_max > 0 and kl >= POOL_BOUND * kl_max:
        out.append("pool-bound")
    extra = r.get("flags")
    if isinstance(extra, str):  # the verdict table's own flags, however they are joined
        out += [f for f in re.split(r"[\s,;]+", extra) if f and f not in out]
    return ", ".join(dict.fromkeys(out))


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------
def gain_fits(labelled: pd.DataFrame) -> list[dict[str, Any]]:
    """Gao et al. fits of proxy and utility gain per (error law, optimizer): best-of-n's form
    for bon, the RL form for every other optimizer. Groups with fewer than 2 points at KL > 0
    get none."""
    from goodhart.eval.fits import fit_bon, fit_rl

    out = []
    for (law, algo), g in labelled.groupby(["error_law", "algo"], sort=False):
        g = g[g[M.KL] > 0]
        if len(g) < 2:
            continue
        fit = fit_bon if algo == "bon" else fit_rl
        for gain in (M.GAIN_PROXY, M.GAIN_UTILITY):
            try:
                out.append(
                    {
                        "error_law": law,
                        "algo": algo,
                        "metric": gain,
                        "fit": fit(g[M.KL].to_numpy(float), g[gain].to_numpy(float)),
                    }
                )
            except (ValueError, np.linalg.LinAlgError):
                continue
    return out


def training_table(root: Path, labelled: pd.DataFrame) -> pd.DataFrame:
    """Per-step metrics of every trained point (train_metrics.jsonl), long format with
    error_law, algo, label (the knob) and step; the last line of a step wins (resumed runs)."""
    frames = []
    for r in labelled.to_dict("records"):
        f = root / "points" / str(r.get("point_id")) / TRAIN_LOG
        if not f.is_file():
            continue
        rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        if not rows:
            continue
        df = pd.DataFrame(rows).drop_duplicates("step", keep="last")
        df["error_law"], df["algo"] = r["error_law"], r["algo"]
        df["label"] = f"{r['algo']} {knob_text(r)}"
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def report_figures(root: Path, labelled: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Draw the report's figures into out_dir; returns the files written."""
    from goodhart.eval.plots import frontier_panels, gao_fit_panels, save_figure, training_curves

    fits = gain_fits(labelled)
    files = [
        save_figure(gao_fit_panels(labelled, fits, False, "Gains against KL, Gao et al. fits"), out_dir / FIGURES[0]),
        save_figure(
            gao_fit_panels(labelled, fits, True, "Gains against sqrt KL (Gao et al.'s axis)"), out_dir / FIGURES[1]
        ),
        save_figure(frontier_panels(labelled, "Proxy vs utility: every optimizer's frontier"), out_dir / FIGURES[2]),
    ]
    curves = training_table(root, labelled)
    if not curves.empty:
        files.append(save_figure(training_curves(curves, "Training curves (training batches)"), out_dir / FIGURES[3]))
    return files


def figures_markdown(root: Path, labelled: pd.DataFrame, files: list[Path]) -> str:
    """A markdown section: the header and the figures (appended to report.md)."""
    lines = ["", "## What was run", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in sweep_header(root, labelled)]
    lines += ["", "## Figures", ""]
    lines += [f"![{p.stem}]({p.name})" for p in files if p.name in FIGURES]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# report.html
# ---------------------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1250px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em} h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0} th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left} .flag{color:#b35900;font-weight:600}
.v-catastrophic{color:#c00;font-weight:700} .v-over-optimized{color:#d46b08;font-weight:600}
img{max-width:100%;border:1px solid #eee;margin:.5em 0} pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.8em}
.verdict{font-size:1.1em;padding:.4em .8em;background:#f4f4f4;display:inline-block;border-radius:4px}
"""


def img_figure(p: Path) -> str:
    """A PNG embedded in the page (base64), captioned by its file name."""
    data = base64.b64encode(p.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(p.stem)}" src="data:image/png;base64,{data}"></figure>'


def _table(headers: list[str], rows: list[list[Any]], left: int = 2) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(h)}</th>' for i, h in enumerate(headers))
    body = []
    for r in rows:
        tds = []
        for i, c in enumerate(r):
            cls = ["l"] if i < left else []
            text = html.escape(str(c))
            if headers[i] == "flags" and c:
                cls.append("flag")
            if headers[i] == "verdict":
                cls.append(f"v-{c}")
            tds.append(f'<td class="{" ".join(cls)}">{text}</td>')
        body.append("<tr>" + "".join(tds) + "</tr>")
    head = f"<thead><tr>{th}</tr></thead>" if any(headers) else ""
    return f"<table>{head}<tbody>{''.join(body)}</tbody></table>"


def points_table(labelled: pd.DataFrame) -> tuple[list[str], list[list[Any]]]:
    """The verdict table with its flags column (shared by the HTML and the tests)."""
    headers = ["error", "algo", "knob", "KL", "proxy gain [95% CI]", "utility gain [95% CI]", "verdict", "flags"]
    rows = []
    for r in labelled.to_dict("records"):
        kl = r.get(M.KL)
        rows.append(
            [
                r["error_law"],
                r["algo"],
                knob_text(r),
                f"{kl:.3f}" if _finite(kl) else "-",
                ci_text(r, M.GAIN_PROXY),
                ci_text(r, M.GAIN_UTILITY),
                r.get("verdict", ""),
                point_flags(r),
            ]
        )
    return headers, rows


def fit_rows(fits: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """One line per fit; an interval or peak that the data cannot pin down reads as such, not ±inf."""
    headers = ["error", "algo", "gain", "form", "points", "a", "b", "KL at peak", "gain at peak", "R^2", "sound"]

    def num(v, ci=None):
        if not _finite(v):
            return "-"
        if ci is not None and all(_finite(c) for c in ci):
            return f"{v:.3g} [{ci[0]:.3g}, {ci[1]:.3g}]"
        return f"{v:.3g}"

    rows = []
    for f in fits:
        fr = f["fit"]
        rows.append(
            [
                f["error_law"],
                f["algo"],
                f.get("metric", M.GAIN_UTILITY).split("/")[-1],
                fr.form,
                fr.n_points,
                num(fr.alpha, fr.alpha_ci),
                num(fr.beta, fr.beta_ci),
                num(fr.kl_star, fr.kl_star_ci) if fr.sound else "not established",  # an unsound fit has no peak
                num(fr.peak_gain) if fr.sound else "-",
                num(fr.r2),
                "yes" if fr.sound else f"no: {fr.reason}",
            ]
        )
    return headers, rows


def legend_html(rep) -> list[str]:
    """Every flag and score the page shows, with the thresholds of the rules that made them."""
    from goodhart.pipeline.report import legend

    rule = getattr(rep, "rule", None)

    def rows(d: dict[str, str]) -> str:
        return "".join(
            f"<tr><td class='l'><code>{html.escape(k)}</code></td><td class='l'>{html.escape(v)}</td></tr>"
            for k, v in d.items()
        )

    return [
        "<h3>How to read the flags and scores</h3>",
        f"<table><thead><tr><th class='l'>flag</th><th class='l'>meaning</th></tr></thead><tbody>{rows(legend.flags(rule))}</tbody></table>",
        f"<table><thead><tr><th class='l'>score</th><th class='l'>meaning</th></tr></thead><tbody>{rows(legend.scores())}</tbody></table>",
        f"<p>{html.escape(legend.TAILS_VS_ALARM)}</p>",
    ]


def write_html(rep, out_dir: Path) -> Path:
    """report.html beside report.md: header, verdicts, the tables with flags, every figure
    embedded, the fits, and report.md itself at the end (so nothing the markdown says is lost)."""
    root, labelled = rep.root, rep.labelled
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>goodhart report: {html.escape(root.name)}</title><style>{CSS}</style></head><body>",
        f"<h1>Sweep <code>{html.escape(root.name)}</code></h1>",
        f"<p class='verdict'>verdict: <b>{html.escape(str(rep.verdict))}</b></p>",
        f"<p>Rules: {html.escape(rep.rules)} (each version's changes: the manual's Rule versions).</p>"
        if getattr(rep, "rules", "")
        else "",
        *_coverage_html(rep),
        *_holdout_html(rep),
        "<h2>What was run</h2>",
        _table(["", ""], [[k, v] for k, v in sweep_header(root, labelled)], left=2),
        "<h2>Verdicts</h2><ul>",
        *[f"<li>{html.escape(str(getattr(g, 'summary', g)))}</li>" for g in rep.groups],
        "</ul>",
        _table(*points_table(labelled), left=3),
        *legend_html(rep),
        "<h2>Figures</h2>",
    ]
    pngs = [p for p in rep.files if Path(p).suffix == ".png" and Path(p).is_file()]
    order = {name: i for i, name in enumerate(FIGURES)}
    parts += [img_figure(Path(p)) for p in sorted(pngs, key=lambda p: order.get(Path(p).name, len(order)))]
    fits = gain_fits(labelled)
    if fits:
        parts += [
            "<h2>Gao et al. fits</h2>",
            "<p>In d = sqrt(KL): best-of-n R(d) = d (a &minus; b d); RL and tilt R(d) = d (a &minus; b ln d). "
            "Intervals the data cannot pin down (too few points) are left out.</p>",
            _table(*fit_rows(fits), left=4),
        ]
    parts += [
        "<h2>report.md</h2><details><summary>the markdown report</summary>",
        f"<pre>{html.escape(rep.markdown)}</pre></details></body></html>",
    ]
    out = out_dir / "report.html"
    atomic_write_text(out, "\n".join(parts))
    return out
