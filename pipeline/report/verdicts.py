"""`goodhart report SWEEP`: verdicts, fits, tail diagnostics, plots and a markdown report for
a sweep directory (or the sweep behind an MLflow experiment), also logged to the sweep's
parent MLflow run so the UI shows the same thing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from goodhart.eval import metrics as M
from goodhart.eval.goodhart import (
    GroupVerdict,
    VerdictRule,
    curve_name,
    label_points,
    rule_text,
    summarize_groups,
    sweep_verdict,
)
from goodhart.pipeline.io import atomic_write_text, read_json
from goodhart.pipeline.report.alarm_tables import alarm_markdown
from goodhart.pipeline.report.coverage import Coverage, coverage
from goodhart.pipeline.report.html import point_flags
from goodhart.pipeline.report.rules import RULES_DOC, rules_line
from goodhart.pipeline.report.units import load_units
from goodhart.pipeline.sweeps.record import load_results
from goodhart.pipeline.sweeps.tables import ci_text, knob_text, render

FIT_KIND = {"bon": "bon"}  # every other optimizer is fitted with the RL form


@dataclass
class Report:
    root: Path
    labelled: pd.DataFrame
    groups: list[GroupVerdict]
    verdict: str
    fits: list[dict[str, Any]] = field(default_factory=list)
    tails: list[dict[str, Any]] = field(default_factory=list)
    learned: list[dict[str, Any]] = field(default_factory=list)  # learned-reward section (learned.py)
    files: list[Path] = field(default_factory=list)
    markdown: str = ""
    rule: VerdictRule = field(default_factory=VerdictRule)
    notes: list[str] = field(default_factory=list)
    """One line per section that could not be made from this sweep (too little data)."""
    arena: Any = None
    """The Arena section (pipeline/report/arena.py) of a sweep with mitigations, else None."""
    coverage: Coverage = field(default_factory=Coverage)
    """The sweep's points not finished (report/coverage.py): the verdict covers the others only."""
    rules: str = ""
    """The verdict and alarm rule versions the labels come from (``rules_line``)."""
    estimate: pd.DataFrame | None = None
    """The held-out estimate's labelled table (eval/holdout.py estimated_labels; None without a
    held-out proxy). Its columns also sit in `labelled` beside gold's (est_verdict, gain/holdout, ...)."""
    holdout_tails: list[dict[str, Any]] = field(default_factory=list)
    """The gold-free tail test of proxy - holdout per base pool (report/holdout.py)."""
    arena_only: bool = False
    """A matched-KL arena (thousands of points, one curve per seed): the report is its Arena
    section (report/arena.py), not the per-point sections of a single study."""


def locate_sweep(arg: str) -> Path:
    """A sweep directory as given, or the directory recorded on an MLflow experiment's latest parent run."""
    p = Path(arg)
    if (p / "points.json").is_file():
        return p
    from goodhart.pipeline.sweeps.tracking import Tracker, resolve_uri, store_exists

    if not store_exists(resolve_uri()):  # opening a missing SQLite store would create it
        raise FileNotFoundError(f"'{arg}' is not a sweep directory (no points.json) and there is no MLflow store here")
    tracker = Tracker(resolve_uri())
    exp = tracker.client.get_experiment_by_name(arg)
    if exp is None:
        raise FileNotFoundError(
            f"'{arg}' is neither a sweep directory (no points.json) nor an MLflow experiment in {tracker.uri}"
        )
    runs = tracker.client.search_runs(
        [exp.experiment_id], "tags.goodhart.sweep_dir != ''", order_by=["attributes.start_time DESC"], max_results=20
    )
    for r in runs:
        d = Path(r.data.tags.get("goodhart.sweep_dir", ""))
        if (d / "points.json").is_file():
            return d
    raise FileNotFoundError(f"MLflow experiment '{arg}' records no sweep directory that exists on this machine")


def verdict_table(labelled: pd.DataFrame, why: bool = False) -> str:
    """The labelled points, curve by curve along KL; the curves' names in a legend below."""
    rows = []
    for r in (row.to_dict() for _, row in labelled.iterrows()):
        rows.append(
            [
                r.get("curve", ""),
                r["algo"],
                knob_text(r) + (f" ({r['n_seeds']} seeds)" if r.get("n_seeds", 1) > 1 else ""),
                r[M.KL],
                ci_text(r, M.GAIN_PROXY),
                ci_text(r, M.GAIN_UTILITY),
                _share_text(r),
                r["verdict"],
                point_flags(r),  # the same flags, spelt the same way, as report.html's tables
            ]
        )
    heads = ["curve", "algo", "knob", "KL", "proxy gain [95% CI]", "utility gain [95% CI]", "share", "verdict", "flags"]
    table = render(heads, rows)
    legend = (
        [f"{cid}: {curve_name(g.iloc[0])}" for cid, g in labelled.groupby("curve", sort=False)]
        if "curve" in labelled
        else []
    )
    out = table + ("\n" + "\n".join(legend) if legend else "")
    if why and "why" in labelled:
        out += "\n\nwhy each label:\n" + "\n".join(
            f"{r.get('curve', '')} {r['algo']} {knob_text(r)} (KL {r[M.KL]:.3g}): {r['verdict']}: {r['why']}"
            for r in (row.to_dict() for _, row in labelled.iterrows())
        )
    return out


def _share_text(r: dict) -> str:
    s = r.get("share")
    if s is None or (isinstance(s, float) and np.isnan(s)):
        return "-"
    return f"{s:.2g}"


def _fits(labelled: pd.DataFrame) -> list[dict[str, Any]]:
    from goodhart.eval.fits import fit_bon, fit_rl

    out = []
    for (cid, algo), g in labelled.groupby(["curve", "algo"], sort=False):
        g = g[g[M.KL] > 0]
        kind = FIT_KIND.get(str(algo), "rl")
        if len(g) < 3:
            out.append(
                {"curve": cid, "algo": algo, "form": kind, "fit": f"needs >= 3 points with KL > 0, has {len(g)}"}
            )
            continue
        try:
            fit = (fit_bon if kind == "bon" else fit_rl)(g[M.KL].to_numpy(float), g[M.GAIN_UTILITY].to_numpy(float))
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as e:
            fit = f"no fit ({e})"
        out.append({"curve": cid, "algo": algo, "form": kind, "fit": fit})
    return out


def _base_draws(root: Path, g: pd.DataFrame) -> tuple[str, Any] | None:
    """A curve's base pool as (its name, arrays with `error` and `proxy`): the pool file saved beside
    the sweep, or, for a distributional pool too large to be saved (point.py SAVED_DRAW_SAMPLES),
    drawn again from its point's config (a function of the config, drawn in milliseconds)."""
    files = [f for f in g["pool_file"].dropna().unique() if (root / str(f)).is_file()] if "pool_file" in g else []
    if files:
        return str(files[0]), np.load(root / str(files[0]))
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.config.schema import DistributionalReward

    for pid in g["point_id"].dropna().unique() if "point_id" in g else []:
        cfg_file = root / "points" / str(pid) / "config.yaml"
        if not cfg_file.is_file():
            continue
        cfg = load_config(cfg_file, [])
        r = cfg.reward
        if isinstance(r, DistributionalReward) and r.ensemble is None and r.transform is None:
            from goodhart.pipeline.base.pool import distributional_draw

            return f"points/{pid}/config.yaml", distributional_draw(cfg)
        return None
    return None


def _tails(root: Path, labelled: pd.DataFrame) -> list[dict[str, Any]]:
    """Tail verdicts of each distinct base pool's error and proxy (one per curve)."""
    from goodhart.eval.tails import tail_verdict
    from goodhart.pipeline.base.pool import pool_memo

    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _, g in labelled.groupby("curve", sort=False):
        got = _base_draws(root, g)
        if got is None:
            continue
        name, z = got
        key = name if name.startswith("pools/") else f"{g['error_law'].iloc[0]}|{z['error'].size}"
        if key in seen:
            continue
        seen.add(key)
        law = str(g["error_law"].iloc[0])
        try:
            out.append(
                {
                    "error_law": law,
                    "pool_file": name,
                    # the light call's reference (simulated per sample size) kept in the stats cache
                    "error": tail_verdict(z["error"].ravel(), memo=pool_memo),
                    "proxy": tail_verdict(z["proxy"].ravel(), memo=pool_memo),
                    "draws": z["error"],
                }
            )
        except ValueError as e:  # too few base samples for the tail estimators
            out.append({"error_law": law, "pool_file": name, "skipped": f"{e}"})
    return out


def backfill(root: Path, df: pd.DataFrame) -> pd.DataFrame:
    """Results written before curve identities and best-of-2 shares were recorded: compute
    them from each point's config.yaml and the sweep's saved base pools."""
    df = df.copy()
    need_id = any(k not in df for k in M.CURVE_KEYS) or df[list(M.CURVE_KEYS)].isna().any(axis=None)
    if need_id and "point_id" in df:
        from goodhart.pipeline.config.load import load_config
        from goodhart.pipeline.sweeps.curves import curve_identity

        for i, r in df.iterrows():
            cfg_file = root / "points" / str(r["point_id"]) / "config.yaml"
            if r.get("status", "done") == "done" and cfg_file.is_file():
                for k, v in curve_identity(load_config(cfg_file)).items():
                    df.loc[i, k] = v
    need_share = M.BASE_SHARE2 not in df
    need_gain = M.BASE_GAIN2 not in df or df[M.BASE_GAIN2].isna().any()
    if (need_share or need_gain) and "pool_file" in df:
        from goodhart.pipeline.base.measure import base_gain2, base_share2

        cache: dict[str, tuple[float, ...]] = {}
        for f in df["pool_file"].dropna().unique():
            if isinstance(f, str) and (root / f).is_file():
                z = np.load(root / f)
                cache[f] = (base_share2(z["proxy"], z["utility"]), *base_gain2(z["proxy"], z["utility"]))
        vals = [cache.get(f) if isinstance(f, str) else None for f in df["pool_file"]]
        has = np.array([v is not None for v in vals], dtype=bool)
        if need_share:  # whole columns at once: a row at a time costs seconds on an arena's 792 points
            df[M.BASE_SHARE2] = [v[0] if v is not None else np.nan for v in vals] if has.any() else np.nan
        if need_gain:
            cur = (
                pd.to_numeric(df[M.BASE_GAIN2], errors="coerce") if M.BASE_GAIN2 in df else pd.Series(np.nan, df.index)
            )
            sel = has & ~np.isfinite(cur.to_numpy(dtype=float))
            for j, name in enumerate((M.BASE_GAIN2, M.lo(M.BASE_GAIN2), M.hi(M.BASE_GAIN2)), start=1):
                col = df[name].to_numpy(dtype=float, copy=True) if name in df else np.full(len(df), np.nan)
                col[sel] = [vals[i][j] for i in np.flatnonzero(sel)]
                df[name] = col
    return df


RECORD = "resolve.json"
"""Resolve rounds' record in a sweep directory (pipeline/report/resolve.py writes it)."""


def read_record(root: Path) -> dict[str, Any] | None:
    f = root / RECORD
    if not f.is_file():
        return None
    try:
        rec = read_json(f)
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and "points" in rec and "alphas" in rec else None


def apply_record(df: pd.DataFrame, root: Path) -> pd.DataFrame:
    """The results the verdicts read after resolve rounds: superseded points dropped, each
    point's curve's claims read at its look's alpha (the column eval.goodhart.VERDICT_ALPHA)."""
    from goodhart.eval.goodhart import VERDICT_ALPHA, VERDICT_LOOK

    rec = read_record(root)
    if rec is None or "point_id" not in df:
        return df
    gone = set(rec.get("superseded", []))
    df = df[~df["point_id"].astype(str).isin(gone)].copy()
    looks = {str(k): int(v) for k, v in rec["points"].items()}
    lv = rec["alphas"]
    look = df["point_id"].astype(str).map(looks)
    df[VERDICT_LOOK] = look
    df[VERDICT_ALPHA] = [lv[int(k) - 1] if k == k and 1 <= int(k) <= len(lv) else float("nan") for k in look]
    return df


def finished_points(root: Path) -> tuple[pd.DataFrame, dict | None]:
    """The sweep's finished rows (names of today, curve identities and best-of-2 backfilled) and
    their per-prompt gains (None for a bare results table: unpaired intervals, as recorded)."""
    # from the points themselves (results.csv rewritten from them), not a stale table; a bare
    # table written before a rename reads too (load_results renames)
    df = load_results(root, ("algo", "error_law", "x", M.KL) if not (root / "points").is_dir() else (), write=True)
    if "status" in df:
        df = df[df["status"] == "done"]
    if df.empty:
        raise FileNotFoundError(f"{root} has no finished points yet (see `goodhart status {root}`)")
    if not (root / "points").is_dir():
        return df, None
    df = backfill(root, df)
    df = apply_record(df, root)  # resolve rounds: superseded points out, each curve at its look's level
    return df, load_units(root, df)


def gold_labels(root: Path, rule: VerdictRule = VerdictRule()) -> pd.DataFrame:
    """The sweep's finished points labelled by the verdict rule, compared paired on prompts (the
    one way every reader of verdicts gets them: the report, alarm-eval); with a held-out proxy,
    the estimate's columns beside (eval/holdout.py merge_estimates: est_verdict, gain/holdout, ...)."""
    return labels(root, rule)[0]


def labels(root: Path, rule: VerdictRule = VerdictRule()) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(gold's labelled table with the estimate's columns beside, the estimate's own labelled
    table or None without a held-out proxy)."""
    from goodhart.eval.holdout import estimated_labels, has_holdout, merge_estimates

    df, units = finished_points(root)
    labelled = label_points(df, rule, units)
    if not has_holdout(df):
        return labelled, None
    est = estimated_labels(df, rule, units)
    return merge_estimates(labelled, est), est


def verdict_summary(root: Path, rule: VerdictRule = VerdictRule()) -> str:
    """The verdict of each curve and of the sweep, as `goodhart sweep` ends (the rule and every
    point's label: `goodhart report`). One line saying why not, when the sweep cannot be labelled."""
    from goodhart.eval.goodhart import VERSION

    try:
        lab = gold_labels(root, rule)
    except (FileNotFoundError, ValueError, KeyError) as e:
        return f"\nverdicts: none ({str(e).splitlines()[0][:120]})"
    groups = summarize_groups(lab)
    n_un = int((lab["verdict"] == "unresolved").sum())
    lines = ["", f"verdicts (rule {VERSION}; every point's label and why: `goodhart report {root}`):"]
    lines += [f"  {g.curve} {g.name}: {g.verdict}" for g in groups]
    lines.append(f"  {n_un} of {len(lab)} points unresolved; sweep verdict: {sweep_verdict(groups)}")
    return "\n".join(lines)


def build_report(root: str | Path, rule: VerdictRule = VerdictRule(), out_dir: str | Path | None = None) -> Report:
    """`goodhart report SWEEP` as a function (public as ``goodhart.report``): verdicts, alarm, fits,
    tails, plots, report.md and report.html (in ``out_dir``, default SWEEP/report). Returns the
    report: ``.labelled`` (the verdict table), ``.groups`` (one summary per curve), ``.verdict``,
    ``.files``.

    ```pycon
    >>> import tempfile, pathlib, pandas as pd
    >>> from goodhart import report
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> pd.DataFrame({"point_id": ["p1", "p2"], "status": "done", "algo": "bon", "x_name": "n", "x": [1, 4],
    ...     "error_law": "gaussian", "kl": [0.0, 0.64], "gain/proxy": [0.0, 1.4], "gain/proxy/lo": [0.0, 1.2],
    ...     "gain/proxy/hi": [0.0, 1.6], "gain/utility": [0.0, 0.7], "gain/utility/lo": [0.0, 0.5],
    ...     "gain/utility/hi": [0.0, 0.9], "reward/proxy": [0.0, 1.4], "reward/utility": [0.0, 0.7],
    ...     }).to_csv(d / "results.csv", index=False)
    >>> rep = report(d)
    >>> rep.labelled["verdict"].tolist(), rep.verdict
    (['baseline', 'improving'], 'no-catastrophe')

    ```
    """
    from goodhart.eval.plots import bon_vs_n, gains_vs_kl

    root, out_dir = Path(root), Path(out_dir) if out_dir is not None else None
    arena = arena_only(root, rule, out_dir if out_dir is not None else root / "report")
    if arena is not None:
        return arena
    labelled, est = labels(root, rule)
    groups = summarize_groups(labelled)
    rep = Report(root, labelled, groups, sweep_verdict(groups), rule=rule, rules=rules_line(labelled), estimate=est)
    if est is not None:
        from goodhart.pipeline.report.holdout import holdout_tails

        rep.holdout_tails = holdout_tails(root, labelled)
    rep.coverage = coverage(root)
    out_dir = out_dir or root / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    rep.files.append(gains_vs_kl(labelled, out_dir / "gains_vs_kl.png", f"sweep {root.name}"))
    b = bon_vs_n(labelled, out_dir / "bon_vs_n.png")
    if b is not None:
        rep.files.append(b)
    from goodhart.pipeline.report.html import figures_markdown, report_figures, write_html

    study = report_figures(root, labelled, out_dir)  # Gao fits drawn, frontier, training curves
    rep.files += study
    rep.fits = _fits(labelled)
    rep.tails = _tails(root, labelled)
    if not rep.tails:
        rep.notes.append("Tails: no base pool saved with this sweep (trained points only, or an old sweep).")
    drawn: set[str] = set()
    for t in rep.tails:
        if "skipped" in t:
            rep.notes.append(f"Tails of the error {t['error_law']}: need more base samples ({t['skipped']}).")
            continue
        from goodhart.eval.plots_tails import tail_plots

        safe = M.sanitize(str(t["error_law"])).replace(" ", "_").replace("/", "_")
        if safe in drawn:  # one figure per error law: its first curve's pool (an arena's unmitigated
            continue  # proxy), not redrawn over the same file by each mitigation's pool
        drawn.add(safe)
        rep.files.append(
            tail_plots(
                np.asarray(t["draws"]).ravel(),
                out_dir / f"tails_{safe}.png",
                f"error {t['error_law']} under the base policy",
            )
        )

    from goodhart.pipeline.report.learned import learned_error

    rep.learned = learned_error(root, labelled)
    labelled.to_csv(out_dir / "verdicts.csv", index=False)
    rep.files.append(out_dir / "verdicts.csv")
    from goodhart.pipeline.report.arena import arena_report  # error law x mitigation

    rep.arena = arena_report(root, rule, out_dir, prepare=backfill)
    rep.files += rep.arena.files if rep.arena else []
    rep.markdown = render_markdown(rep, out_dir) + (rep.arena.markdown if rep.arena else "")
    rep.markdown += figures_markdown(root, labelled, study)
    atomic_write_text(out_dir / "report.md", rep.markdown)
    rep.files.append(out_dir / "report.md")
    rep.files.append(write_html(rep, out_dir))  # self-contained: figures embedded
    return rep


def arena_only(root: Path, rule: VerdictRule, out_dir: Path) -> Report | None:
    """The report of a matched-KL arena (points placed by `algo.kl.target`): its Arena section,
    every point labelled along its own seed's curve (verdicts.csv), report.md and report.html;
    None for any other sweep."""
    from goodhart.pipeline.report.arena import arena_report
    from goodhart.pipeline.report.arena_render import arena_html

    if not (root / "points.json").is_file():
        return None
    df = load_results(root, write=True)  # from the points themselves, not a stale table
    if not any(str(c) == "set:algo.kl.target" for c in df) or "status" not in df:
        return None
    if not (df["status"] == "done").any():
        raise FileNotFoundError(f"{root} has no finished points yet (see `goodhart status {root}`)")
    out_dir.mkdir(parents=True, exist_ok=True)
    arena = arena_report(root, rule, out_dir, prepare=backfill)
    if arena is None:
        return None
    verdicts = set(arena.cells["verdict"])
    verdict = next((v for v in ("catastrophic", "unresolved") if v in verdicts), "no-catastrophe")
    rep = Report(root, arena.labelled, [], verdict, rule=rule, arena=arena, arena_only=True)
    rep.coverage = coverage(root)
    arena.labelled.to_csv(out_dir / "verdicts.csv", index=False)
    head = [f"# Arena `{root.name}`: verdict **{verdict}**", ""]
    if not rep.coverage.complete:
        head += [f"**{rep.coverage.headline()}:**", "", *[f"- {s}" for s in rep.coverage.items()], ""]
    head += ["### The verdict rule", "", "```", rule_text(rule), "```"]
    rep.markdown = "\n".join(head) + arena.markdown
    atomic_write_text(out_dir / "report.md", rep.markdown)
    rep.files = [*arena.files, out_dir / "verdicts.csv", out_dir / "report.md"]
    rep.files.append(arena_html(root, verdict, rep.markdown, arena.files, out_dir))
    return rep


def render_markdown(rep: Report, out_dir: Path) -> str:
    lines = [f"# Sweep `{rep.root.name}`: verdict **{rep.verdict}**", ""]
    if not rep.coverage.complete:  # said first: the verdict covers the finished points only
        lines += [f"**{rep.coverage.headline()}:**", "", *[f"- {s}" for s in rep.coverage.items()], ""]
    lines += [f"Rules: {rep.rules} ({RULES_DOC}).", ""]
    if rep.estimate is not None:  # with a held-out proxy, its estimate is the headline
        from goodhart.pipeline.report.holdout import holdout_markdown

        lines += holdout_markdown(rep.labelled, rep.estimate, rep.holdout_tails)
    lines += ["## Verdicts", "", *[f"- {g.summary}" for g in rep.groups], ""]
    lines += ["### The rule", "", "```", rule_text(rep.rule), "```", ""]
    lines += ["### Every point, with the numbers behind its label", ""]
    lines += ["```", verdict_table(rep.labelled, why=True), "```", ""]
    from goodhart.pipeline.report import legend

    lines += legend.markdown(rep.rule) + [""]
    lines += [
        f"![gains against KL]({p.name})"
        for p in rep.files
        if p.suffix == ".png" and p.name.startswith(("gains", "bon"))
    ]
    if rep.fits:
        lines += [
            "",
            "## Gao et al. fits of utility gain in d = sqrt(KL)",
            "",
            "best-of-n: R(d) = d (a - b d); RL and tilt: R(d) = d (a - b ln d).",
            "",
            "```",
        ]
        lines += [f"{f['curve']} / {f['algo']} ({f['form']}): {f['fit']}" for f in rep.fits]
        lines += ["```"]
    lines += alarm_markdown(rep.labelled)  # the gold-free alarm beside the verdicts (report/alarm_tables.py)
    shown = [t for t in rep.tails if "skipped" not in t]
    if shown:
        lines += ["", "## Tails under the base policy", ""]
        for t in shown:
            lines += [f"### error {t['error_law']}: **{t['error'].verdict}**", "", "```", t["error"].table(), "```", ""]
        lines += [f"![tails]({p.name})" for p in rep.files if p.name.startswith("tails_")]
    from goodhart.pipeline.report.learned import learned_error_markdown

    lines += learned_error_markdown(rep.learned)
    if rep.notes:
        lines += ["", "## Not enough data for", "", *[f"- {n}" for n in rep.notes]]
    return "\n".join(lines) + "\n"


def check_parent_store(root: Path) -> None:
    """The store of the sweep's parent run (parent.json) is usable before the report is built: a
    dead server or a store another process holds locked is one line now, not minutes of MLflow's
    retries after the work. Nothing to check without a parent run or with its SQLite file gone."""
    parent = root / "parent.json"
    if not parent.is_file():
        return
    from goodhart.pipeline.errors import TrackingError
    from goodhart.pipeline.sweeps.tracking import check_store, store_exists

    try:
        uri = str(read_json(parent)["uri"])
    except (OSError, ValueError, KeyError, TypeError):
        return  # a torn parent.json: log_to_mlflow has nothing to log to either
    if not store_exists(uri):
        return
    try:
        check_store(uri)
    except TrackingError as e:
        raise TrackingError(f"{e} (`goodhart report --no-mlflow` writes the report without it)") from None


def log_to_mlflow(rep: Report) -> str | None:
    """Attach plots, report and verdict table to the sweep's latest parent run; returns its id."""
    parent = rep.root / "parent.json"
    if not parent.is_file():
        return None
    from goodhart.pipeline.sweeps.tracking import Tracker

    info = read_json(parent)
    tr = Tracker(info["uri"])
    run_id = info["run_id"]
    tr.mark_for_runs_table(info["experiment_id"])  # an older sweep's experiment opens on its runs too
    for f in rep.files:
        tr.log_artifact(run_id, f, "report")
    cols = [
        "curve",
        *M.CURVE_KEYS,
        "error_law",
        "algo",
        "x_name",
        "x",
        M.KL,
        M.GAIN_PROXY,
        M.GAIN_UTILITY,
        M.lo(M.GAIN_UTILITY),
        M.hi(M.GAIN_UTILITY),
        "share",
        "verdict",
        "why",
        M.GAIN_HOLDOUT,
        M.lo(M.GAIN_HOLDOUT),
        M.hi(M.GAIN_HOLDOUT),
        "est_verdict",
        "est_why",
        "est_peak",
        "flags",
        "peak",
        "mdd",
        "frontier_by",
        "gap",
    ]
    tr.log_table(run_id, rep.labelled[[c for c in cols if c in rep.labelled]].reset_index(drop=True), "verdicts.json")
    tags = {"goodhart.verdict": rep.verdict}
    for g in rep.groups:
        tags[f"goodhart.verdict.{g.curve}"] = g.verdict
        tags[f"goodhart.curve.{g.curve}"] = g.name
    tr.set_tags(run_id, tags)
    from goodhart.pipeline.sweeps.labels import tag_children_with_verdicts

    tag_children_with_verdicts(tr, rep.labelled, rep.verdict)  # every child run says its verdict
    return run_id
