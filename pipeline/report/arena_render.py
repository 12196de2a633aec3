"""The Arena section as text, markdown and a heat map (pipeline/report/arena.py computes it)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from goodhart.pipeline.report.arena_theory import STABLE

STOP_COLUMNS = ("alarm-stop", "holdout-stop")
"""The stopping rules' columns (report/arena.py STOPS): one utility each, where they stop."""

SHORT = {
    "catastrophic": "CAT",
    "over-optimized": "over",
    "improving": "impr",
    "unresolved": "unres",
    "baseline": "base",
    "base (no optimization)": "base",
}
MARK = {"disagrees": "!", "undecided": "?"}
HEADLINE = (1.0, 4.0)
"""KL targets whose utility the terminal prints (with the grid's end and each column's best)."""
SHARE_TARGET = 1.0
"""The KL target whose utility share the terminal prints."""
HEAT_TARGET = 2.0
"""The KL target the heat map colours by (the nearest one the sweep has)."""


def short_law(law: str) -> str:
    """`student_t(df=3) x1` -> `t3`, `pareto(alpha=1.5) x1` -> `pareto1.5`; a scale other than 1 kept."""
    name, _, scale = str(law).partition(" x")
    m = re.fullmatch(r"(\w+)\((\w+)=([\d.e+-]+)\)", name)
    if m:
        base = {"student_t": "t"}.get(m.group(1), m.group(1))
        name = f"{base}{m.group(3)}"
    return name if scale in ("", "1") else f"{name} x{scale}"


def _order(values: list[str]) -> list[str]:
    from goodhart.pipeline.report.arena_theory import COLUMNS

    return [v for v in COLUMNS if v in values] + [v for v in values if v not in COLUMNS]


def _targets(cells: pd.DataFrame) -> list[float]:
    return sorted({float(c[2:]) for c in cells.columns if c.startswith("U@") and "/" not in c})


def _f(v: object, fmt: str = ".2f") -> str:
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"
    return "-" if not np.isfinite(x) else format(x, fmt)


def _by_cell(frame: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """(error law, column) -> its rows: grouped once (a boolean filter of the wide frame per cell
    and table made the default arena's matrix take ~6 s)."""
    if frame.empty:
        return {}
    return {(str(k[0]), str(k[1])): g for k, g in frame.groupby(["error_law", "column"], sort=False)}


def _arrow(tr: dict[tuple[str, str], pd.DataFrame], law: str, col: str, target: float | None) -> str:
    """↓ / ↑ where the utility gain changes significantly from the smallest to the largest N
    (`tr`: the trend rows by cell, _by_cell)."""
    from goodhart.pipeline.report.arena_theory import direction

    g = tr.get((law, col))
    if g is None:
        return ""
    g = g[g["best"].fillna(False).astype(bool)] if target is None else g[g["target"] == target]
    if g.empty:
        return ""
    r = g.iloc[0]
    return {"down": "↓", "up": "↑"}.get(direction(r["dU"], r["dU/lo"], r["dU/hi"]), "")


def _reached(c: pd.Series, t: float, end: bool = False) -> bool:
    """The column's optimum reaches KL t on this cell's pools (the grid's end: always, it is the limit)."""
    kl = c.get(f"kl@{t:g}")
    return kl is not None and np.isfinite(kl) and (end or kl >= t * (1 - 1e-3))


def _grid(fam: pd.DataFrame, cell) -> str:
    from goodhart.pipeline.sweeps.tables import render

    laws = list(dict.fromkeys(fam["error_law"]))
    cols = _order(list(dict.fromkeys(fam["column"])))
    by = _by_cell(fam)
    rows = []
    for col in cols:
        row = [col]
        for law in laws:
            g = by.get((str(law), str(col)))
            row.append(cell(law, col, g.sort_values("N")) if g is not None and not g.empty else "")
        rows.append(row)
    return render(["column", *(short_law(x) for x in laws)], rows)


def matrix_text(cells: pd.DataFrame, trends: pd.DataFrame) -> str:
    """The terminal's arena: per family, the verdicts with their seeds, utility at headline KL
    targets and at the grid's end, each column's best, alarm-stop, and the predictions."""
    out = []
    by_trend = _by_cell(trends)
    for fam_name, fam in cells.groupby("family", sort=False):
        ns = sorted(fam["N"].unique())
        nstr = " | ".join(f"{int(n):,}" for n in ns)
        seeds = int(fam["seeds"].max())
        targets = _targets(fam)
        head = f"[{fam_name}] " if fam_name != "pool" else ""

        def verdict_cell(law, col, g):
            txt = " ".join(f"{SHORT.get(r.verdict, r.verdict)}{int(r.agree)}" for r in g.itertuples())
            return txt + MARK.get(str(g["agreement"].iloc[0]), "")

        out.append(
            f"{head}verdict along matched KL (its last target: the pool argmax), seeds agreeing of {seeds}, "
            f"at N = {nstr}; ! = disagrees with the prediction on >= {STABLE:.0%} of the seeds at every N and the trend "
            "in N does not move toward it, ? = cannot tell\n" + _grid(fam, verdict_cell)
        )
        shown = [t for t in HEADLINE if t in targets] + ([targets[-1]] if targets else [])
        for t in dict.fromkeys(shown):

            def u_cell(law, col, g, t=t, end=targets[-1]):
                parts = []
                for _, c in g.iterrows():
                    ok = _reached(c, t, t == end)
                    parts.append(_f(c.get(f"U@{t:g}")) if ok else f"({_f(c.get(f'kl@{t:g}'), '.1f')})")
                return " ".join(parts) + _arrow(by_trend, law, col, t)

            what = "the grid's end (the pool argmax)" if t == targets[-1] else f"KL = {t:g}"
            out.append(
                f"{head}utility gain at {what}: mean over seeds at N = {nstr} (↓ ↑: a significant change with N, "
                "Welch over prompts; (x): the column's optimum never reaches this KL, x is the most it reaches)\n"
                + _grid(fam[~fam["column"].isin(STOP_COLUMNS)], u_cell)
            )

        if SHARE_TARGET in targets:

            def share_cell(law, col, g):
                return " ".join(_f(c.get(f"share@{SHARE_TARGET:g}"), ".2g") for _, c in g.iterrows())

            out.append(
                f"{head}utility share of the proxy gain at KL = {SHARE_TARGET:g} (gain(utility) / gain(proxy), mean over "
                f"seeds) at N = {nstr}: a share that falls as N grows is the proxy gain outrunning the utility's\n"
                + _grid(fam[~fam["column"].isin(STOP_COLUMNS)], share_cell)
            )

        def best_cell(law, col, g):
            return " ".join(_f(v) for v in g["best_utility"]) + _arrow(by_trend, law, col, None)

        out.append(
            f"{head}utility gain at the column's best KL (gold's best; alarm-stop: where it stops), mean over seeds "
            f"at N = {nstr}\n" + _grid(fam, best_cell)
        )
        for stop_name in STOP_COLUMNS:
            st = fam[fam["column"] == stop_name]
            if st.empty:
                continue
            from goodhart.pipeline.sweeps.tables import render

            rows = []
            for law, g in st.groupby("error_law", sort=False):
                row = [short_law(law)]
                for r in g.sort_values("N").itertuples():
                    row += [_f(r.stop_kl), _f(r.stop_utility), _f(r.stop_regret), _f(r.stop_proxy, ".3g")]
                rows.append(row)
            heads = ["error law"] + [
                f"{h} N={int(n):,}" for n in sorted(st["N"].unique()) for h in ("KL", "utility", "regret", "proxy")
            ]
            how = {
                "alarm-stop": "stopped before the first target whose alarm says `alarm`",
                "holdout-stop": "stopped at the held-out proxy's estimated peak (its gain's largest lower bound)",
            }[stop_name]
            out.append(
                f"{head}{stop_name}: the KL tilt {how}; its KL, utility gain, regret against gold's best on the same "
                "seed's curve and proxy gain, means over seeds\n" + render(heads, rows)
            )
    out.append(predictions_text(cells))
    return "\n\n".join(out)


def predictions_text(cells: pd.DataFrame) -> str:
    """The predictions (pipeline/report/arena_theory.py), one line per column."""
    from goodhart.pipeline.report.arena_theory import column_rule

    lines = [
        "predictions (pipeline/report/arena_theory.py; derived in docs/arena.md, pinned by tests/test_arena_theory.py):",
        "  heavy = heavier than every exponential (lognormal, Student t, Pareto, Levy); light: gaussian, exponential.",
        "  verdict along the grid: every column tends to the pool argmax, whose utility gain -> 0 as N grows iff X is",
        "  heavy: catastrophic iff heavy (the clip excepted: its limit is uniform on the base's top 1%). At a fixed KL",
        "  as N grows (the utility tables' arrows), per column:",
    ]
    for col in _order(list(dict.fromkeys(cells["column"]))):
        lines.append(f"  {col}: {column_rule(col)}")
    n = cells.drop_duplicates(["family", "error_law", "column"])
    counts = n["agreement"].value_counts()
    lines.append(
        f"Across {len(n)} (law, column) pairs the verdict agrees with the prediction in {int(counts.get('agrees', 0))}, "
        f"disagrees in {int(counts.get('disagrees', 0))} (!), cannot tell in {int(counts.get('undecided', 0))} (?), "
        f"{int(counts.get('n/a', 0))} have none."
    )
    return "\n".join(lines)


# ============================================================================================
# Markdown
# ============================================================================================
def _ci(c: pd.Series, name: str) -> str:
    m, lo, hi = c.get(name), c.get(f"{name}/lo"), c.get(f"{name}/hi")
    if m is None or not np.isfinite(m):
        return "-"
    return f"{m:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and np.isfinite(lo) else "")


def markdown(cells: pd.DataFrame, trends: pd.DataFrame, png: Path | None) -> str:
    lines = ["", "## Arena: error law x column, at matched KL", ""]
    lines += [
        "Every column's knob is solved on each pool so that its optimum's KL is each target (eval/matched.py);",
        "the last target lies past log N, the pool argmax every column tends to. Each seed's curve is labelled",
        "on its own (eval/goodhart.py label_points): CAT catastrophic, over over-optimized, impr improving,",
        "unres unresolved, base baseline; the number after a verdict is how many seeds read it. `!`: the",
        "measurement disagrees with the prediction on >= 80% of the seeds (4 of 5) at every pool size and the trend in N",
        "does not move toward it; `?`: the data cannot tell.",
        "",
        "```",
        matrix_text(cells, trends),
        "```",
        "",
    ]
    if png is not None:
        lines += [f"![arena heat map]({png.name})", ""]
    targets = _targets(cells)
    for t in targets:
        lines += [
            f"### At KL = {t:g}" + (" (past log N: the pool argmax)" if t == targets[-1] else ""),
            "",
            "| family | error law | column | N | KL reached | utility gain [95% across seeds] | share | proxy gain |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for _, c in cells[~cells["column"].isin(STOP_COLUMNS)].iterrows():
            lines.append(
                f"| {c['family']} | {c['error_law']} | {c['column']} | {int(c['N']):,} | {_f(c.get(f'kl@{t:g}'), '.3f')} | "
                f"{_ci(c, f'U@{t:g}')} | {_f(c.get(f'share@{t:g}'), '.3g')} | {_f(c.get(f'proxy@{t:g}'), '.3g')} |"
            )
        lines.append("")
    if not trends.empty:
        lines += [
            "### The trend in N at matched KL",
            "",
            "Utility gain from the smallest to the largest pool at each KL target (Welch interval over the prompts",
            "of every seed); the mean share and proxy gain at both; `best`: gold's best (Welch over seeds).",
            "",
            "| error law | column | KL | N | utility gain | change [95%] | share | proxy gain | predicted at fixed KL |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for _, r in trends.iterrows():
            best = r.get("best") is True
            kl = "best" if best else f"{r['target']:g}"
            u = "" if best else f"{_f(r['U1'], '.3f')} -> {_f(r['U2'], '.3f')}"
            sh = "" if best else f"{_f(r['share1'], '.3g')} -> {_f(r['share2'], '.3g')}"
            px = "" if best else f"{_f(r['proxy1'], '.3g')} -> {_f(r['proxy2'], '.3g')}"
            fk = r.get("fixed_kl")
            pred = "-> base" if fk is True else "converges" if fk is False else "-"
            lines.append(
                f"| {r['error_law']} | {r['column']} | {kl} | {int(r['n1']):,} -> {int(r['n2']):,} | {u} | "
                f"{_f(r['dU'], '.3f')} [{_f(r['dU/lo'], '.3f')}, {_f(r['dU/hi'], '.3f')}] | {sh} | {px} | {pred} |"
            )
        lines.append("")
    lines += [
        "### Prediction against measurement",
        "",
        "| family | error law | column | N | verdicts over seeds | predicted | agreement | why (theory) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in cells.itertuples():
        lines.append(
            f"| {r.family} | {r.error_law} | {r.column} | {int(r.N):,} | {r.verdicts} | {r.predicted} | "
            f"{r.agreement} | {r.predicted_why} |"
        )
    return "\n".join(lines) + "\n"


# ============================================================================================
# Heat map
# ============================================================================================
def heatmap(cells: pd.DataFrame, path: Path) -> Path:
    """One panel per (family, N): utility gain at the KL target nearest HEAT_TARGET (alarm-stop and
    holdout-stop: at their stop), each cell with its modal verdict and how many seeds agree; a red outline where the
    measurement disagrees with the prediction, dashed where the data cannot tell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = _targets(cells)
    t = min(targets, key=lambda x: abs(x - HEAT_TARGET)) if targets else None
    panels = [(f, n) for f in dict.fromkeys(cells["family"]) for n in sorted(cells[cells["family"] == f]["N"].unique())]
    laws = list(dict.fromkeys(cells["error_law"]))
    cols = _order(list(dict.fromkeys(cells["column"])))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(len(panels) * (0.95 * len(laws) + 2.2), 0.42 * len(cols) + 1.6), squeeze=False
    )

    def value(r: pd.Series) -> float:
        if r["column"] in STOP_COLUMNS or t is None:  # a stopping rule: the utility where it stops
            return float(r["best_utility"])
        v = r.get(f"U@{t:g}")
        return float(v) if v is not None else float("nan")

    vals = np.array([value(r) for _, r in cells.iterrows()], dtype=float)
    vmax = float(np.nanmax(np.abs(vals))) if np.isfinite(vals).any() else 1.0
    for ax, (fam, n) in zip(axes[0], panels):
        g = cells[(cells["family"] == fam) & (cells["N"] == n)]
        m = np.full((len(cols), len(laws)), np.nan)
        for _, r in g.iterrows():
            m[cols.index(r["column"]), laws.index(r["error_law"])] = value(r)
        im = ax.imshow(m, cmap="RdYlGn", vmin=-vmax, vmax=vmax, aspect="auto")
        for r in g.itertuples():
            i, j = cols.index(r.column), laws.index(r.error_law)
            v = m[i, j]
            ax.text(
                j,
                i,
                f"{SHORT.get(r.verdict, r.verdict)} {int(r.agree)}/{int(r.seeds)}\n{v:.2f}",
                ha="center",
                va="center",
                fontsize=5.5,
            )
            if r.agreement == "disagrees":
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=1.8))
            elif r.agreement == "undecided":
                ax.add_patch(plt.Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False, ec="0.45", lw=0.8, ls="--"))
        ax.set_xticks(range(len(laws)), [short_law(x) for x in laws], rotation=35, ha="right", fontsize=7)
        ax.set_yticks(range(len(cols)), cols, fontsize=7)
        what = f"KL = {t:g}" if t is not None else "gold's best"
        ax.set_title(f"{'' if fam == 'pool' else fam + ': '}N = {int(n):,}: utility gain at {what}", fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.6)
    fig.suptitle(
        "Arena at matched KL: verdict (seeds agreeing) and utility gain; red: disagrees with the prediction, "
        "dashed: cannot tell",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def arena_html(root: Path, verdict: str, md: str, files: list[Path], out_dir: Path) -> Path:
    """report.html of an arena: its verdict, the heat map embedded and report.md itself."""
    import html

    from goodhart.pipeline.io import atomic_write_text
    from goodhart.pipeline.report.html import CSS, img_figure

    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>goodhart arena: {html.escape(root.name)}</title><style>{CSS}</style></head><body>",
        f"<h1>Arena <code>{html.escape(root.name)}</code></h1>",
        f"<p class='verdict'>verdict: <b>{html.escape(verdict)}</b></p>",
        *[img_figure(Path(p)) for p in files if Path(p).suffix == ".png" and Path(p).is_file()],
        f"<pre>{html.escape(md)}</pre></body></html>",
    ]
    out = out_dir / "report.html"
    atomic_write_text(out, "\n".join(parts))
    return out
