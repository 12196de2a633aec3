"""Results tables in the docs, drawn from stored runs by the code: `python docs/tables.py`.

A results table sits between markers that name the stored run it comes from and what of it to
draw; everything between them is generated (edit the run or the code, never the table):

    <!-- results: RUN [curve=TEXT] [part=tables|report|power] -->
    ...
    <!-- /results -->

RUN is a folder ``docs/runs/RUN/`` holding the run's ``results.csv`` (the sweep's own table, as
`goodhart sweep` wrote it; with resolve rounds, their ``resolve.json`` too: a curve's table is its
last look, as the sweep prints it) and ``run.json``: the command that made it (sweep file and overrides),
when, on which machine and under what load, the commit, the point ids and the alarm rule's
version. ``curve=TEXT`` keeps the curves whose title contains TEXT. The block is the sweep's
end-of-run tables (``pipeline/sweeps/tables.py``, what `goodhart sweep` prints) and a line
naming the command, the date, the machine and the load. A run stored with its report (its
``report.md`` and ``verdicts.csv``, as docs/study.py stores the SmolLM2 study) also gives
``part=report`` (the report's held-out estimate and verdicts sections), ``part=power`` (the
verdict rule's power analysis: the prompts that would resolve each unresolved point) and ``part=cost`` (each step's
wall time, CPU time and load, from its ``study.json``). An arena run (``snapshot --arena``) is stored
by its report's cell tables instead of its results.csv, and gives ``part=arena``: the matrix
`goodhart report` prints, redrawn from them by the current code (``arena_render.matrix_text``);
its alarm check reads the alarm rule versions run.json recorded from the results.

    python docs/tables.py snapshot runs/smollm2_smoke configs/sweep/smollm2_smoke.yaml  # store a finished run
    python docs/tables.py write   # redraw every marked block from its stored run
    python docs/tables.py check   # exit 1 naming every stale block (tests/test_doc_tables.py)

What "stale" means, checked without re-running a sweep:

1. the block is not what the current code draws from its stored run: a hand edit, a change of
   the table code or its labels, a run stored again but not redrawn;
2. the stored run is not what its command runs now: the sweep file, with the recorded overrides,
   expands to other point ids (a grid, a default or a config key changed);
3. a rule its numbers were computed under has changed: the alarm column is computed when a
   point runs, under ``eval/alarm.py``'s VERSION, recorded per row (``alarm_stale`` reads it).

Not caught: a code change that would move a re-run's numbers without changing any config
(sampling, training). Only re-running tells; ``run.json`` names the commit the run came from.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "docs" / "runs"
PAGES = ["README.md", "benchmarks/README.md", "docs/*.md"]
PARTS = ("tables", "report", "power", "cost", "arena")
ARENA_TABLES = ("arena.csv.gz", "arena_trend.csv.gz")
"""An arena run is stored by its report's cell tables (report/arena.csv, arena_trend.csv, gzipped:
~170 KB), not its results.csv (8.6 MB for the default arena's 7,680 points)."""
BLOCK = re.compile(r"(<!-- results: ([^>]*?) -->\n)(.*?)(<!-- /results -->)", re.S)


@dataclass
class Block:
    page: Path
    run: str
    options: dict[str, str]
    text: str  # what sits between the markers now


def pages(repo: Path = REPO) -> list[Path]:
    out: list[Path] = []
    for pattern in PAGES:
        out += sorted(repo.glob(pattern))
    return out


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """'RUN curve="pareto x0.3"' -> ('RUN', {'curve': 'pareto x0.3'})."""
    import shlex

    words = shlex.split(spec)
    if not words:
        raise ValueError("a results marker names no run")
    opts = {}
    for w in words[1:]:
        k, sep, v = w.partition("=")
        if not sep or k not in ("curve", "part"):
            raise ValueError(f"results marker '{spec}': unknown option {w!r} (known: curve=TEXT, part=PART)")
        if k == "part" and v not in PARTS:
            raise ValueError(f"results marker '{spec}': part={v!r} (known: {', '.join(PARTS)})")
        opts[k] = v
    return words[0], opts


def blocks(repo: Path = REPO) -> list[Block]:
    out = []
    for page in pages(repo):
        for m in BLOCK.finditer(page.read_text()):
            run, opts = parse_spec(m.group(2))
            out.append(Block(page, run, opts, m.group(3)))
    return out


# ---- drawing ---------------------------------------------------------------------------------
def load_run(run: str, runs: Path = RUNS) -> tuple[dict, object]:
    """(run.json, results table) of a stored run; the table is None for an arena run (stored by
    its report's cell tables)."""
    import pandas as pd

    d = runs / run
    arena = all((d / f).is_file() for f in ARENA_TABLES)
    if not (d / "run.json").is_file() or not ((d / "results.csv").is_file() or arena):
        raise FileNotFoundError(f"{d}: no stored run (run.json and results.csv; `python docs/tables.py snapshot`)")
    meta = json.loads((d / "run.json").read_text())
    return meta, pd.read_csv(d / "results.csv") if (d / "results.csv").is_file() else None


def arena_tables(d: Path) -> tuple[object, object]:
    """(cells, trends) of a stored arena run, read back as the report wrote them ('n/a', an
    agreement class, stays a string: pandas would read it as missing)."""
    import pandas as pd

    kw = {"keep_default_na": False, "na_values": [""]}
    return tuple(pd.read_csv(d / f, **kw) for f in ARENA_TABLES)  # type: ignore[return-value]


def draw(run: str, options: dict[str, str], runs: Path = RUNS) -> str:
    """The markdown between a block's markers: the sweep's tables from the stored run, and where
    they came from."""
    from goodhart.pipeline.sweeps.tables import sweep_tables

    meta, df = load_run(run, runs)
    part = options.get("part", "tables")
    if part == "report":
        return report_sections(runs / run) + "\n" + source_line(run, meta)
    if part == "power":
        return power_table(runs / run) + "\n" + source_line(run, meta)
    if part == "cost":
        return cost_table(runs / run, meta) + "\n" + source_line(run, meta)
    if part == "arena":
        if not all((runs / run / f).is_file() for f in ARENA_TABLES):
            raise FileNotFoundError(
                f"{runs / run}: not stored as an arena run (`python docs/tables.py snapshot --arena`)"
            )
        from goodhart.pipeline.report.arena_render import matrix_text

        return f"```text\n{matrix_text(*arena_tables(runs / run))}\n```\n\n" + source_line(run, meta)
    if df is None:
        raise FileNotFoundError(f"{runs / run}: an arena run, stored without its results.csv: use part=arena")
    if (runs / run / "resolve.json").is_file():  # resolve rounds: each curve's last look, as the sweep prints it
        from goodhart.pipeline.report.verdicts import apply_record

        df = apply_record(df, runs / run)
    text = sweep_tables(df).strip("\n")
    if "curve" in options:
        kept = [t for t in re.split(r"\n\n(?=utility |error: )", text) if options["curve"] in t.splitlines()[0]]
        if not kept:
            raise ValueError(f"run {run}: no curve title contains {options['curve']!r}")
        text = "\n\n".join(kept)
    return f"```text\n{text}\n```\n\n" + source_line(run, meta)


def source_line(run: str, meta: dict) -> str:
    """Where a block's numbers come from: command, wall time, date, machine, load, commit."""
    loads = meta.get("load", [])
    load = f"load average {min(loads):.1f}-{max(loads):.1f}" if loads else "load not recorded"
    m = meta.get("machine", {})
    wall = meta.get("wall_seconds")
    took = f" in {int(wall // 60)} min {int(wall % 60)} s" if wall else ""
    src = (
        f"`{meta['command']}`{took}, {meta['when_utc'][:10]}, {m.get('cores', '?')} CPU cores ({m.get('cpu_model', '?')}), "
        f"{load}, commit {meta.get('commit', '?')[:10]}; stored in `docs/runs/{run}/`"
    )
    return f"<sub>From {src}.</sub>\n"


def _stored(d: Path, name: str) -> Path:
    if not (d / name).is_file():
        raise FileNotFoundError(f"{d}: no stored {name} (a run stored with its report: docs/study.py)")
    return d / name


def report_sections(d: Path) -> str:
    """The stored report.md's held-out estimate section and its verdict lines (not the rule text,
    which docs/verdicts.md shows), headings dropped a level to sit under a page's section."""
    text = _stored(d, "report.md").read_text()
    held = re.search(r"^## Held-out estimate.*?(?=^## )", text, re.S | re.M)
    verdicts = re.search(r"^## Verdicts\n.*?(?=^### |^## |\Z)", text, re.S | re.M)
    if not held or not verdicts:
        raise ValueError(f"{d}/report.md: no 'Held-out estimate' or 'Verdicts' section")
    body = (held.group(0).rstrip() + "\n\n" + verdicts.group(0).rstrip()).replace("\n## ", "\n#### ")
    return "#### " + body[3:] + "\n"


def cost_table(d: Path, meta: dict) -> str:
    """Each step of each attempt of a stored study (study.json, docs/study.py): wall seconds, CPU
    seconds of its processes and the load averages sampled while it ran; and the totals. Steps
    that ran side by side overlap, so the total wall is each attempt's own (where recorded)."""
    attempts = json.loads(_stored(d, "study.json").read_text())
    head = f"{'attempt':>7}  {'step':<22}  {'wall':>9}  {'CPU s':>7}  {'load average':>12}  {'rc':>3}"
    lines, wall, cpu, overlap = [head, "-" * len(head)], 0.0, 0.0, False

    def clock(s: float) -> str:
        return f"{int(s // 60)}m {int(s % 60):02d}s"

    for i, att in enumerate(attempts, 1):
        for s in att["steps"]:
            lo, hi = min(s["load"]), max(s["load"])
            mark = " *" if s.get("side_by_side") else ""
            overlap |= bool(mark)
            lines.append(
                f"{i:>7}  {s['step'] + mark:<22}  {clock(s['wall_s']):>9}  {s['cpu_s']:>7.0f}  "
                f"{f'{lo:.1f}-{hi:.1f}':>12}  {s['rc']:>3}"
            )
            cpu += s["cpu_s"]
        wall += att.get("wall_s", sum(s["wall_s"] for s in att["steps"]))
    lines += ["-" * len(head), f"{'':>7}  {'all':<22}  {clock(wall):>9}  {cpu:>7.0f}"]
    cores = meta.get("machine", {}).get("cores", "?")
    note = (
        f"Every step of every attempt (an interrupted attempt's last step has rc != 0; the next attempt resumed it), "
        f"on {cores} cores. CPU s is user + system time of the step's processes, which the neighbours' load moves "
        "much less than wall time."
    )
    if overlap:
        note += " Steps marked * ran side by side, one thread each; `all` is the attempts' wall time."
    return note + "\n\n```text\n" + "\n".join(lines) + "\n```\n"


def power_table(d: Path) -> str:
    """The verdict rule's power analysis of the stored verdicts.csv (eval.goodhart.power_table):
    every unresolved point (and every over-optimized one whose interval still reaches the
    near-base band) with its minimal detectable drop and the prompts that would resolve it at
    80% power, at the pool size it has."""

    import pandas as pd

    from goodhart.eval.goodhart import power_table as rule_power
    from goodhart.pipeline.report.resolve import power_rows
    from goodhart.pipeline.sweeps.tables import render

    v = pd.read_csv(_stored(d, "verdicts.csv"))
    if "open" in v:
        v["open"] = v["open"].fillna(False).astype(bool)
    pt = rule_power(v)
    n_un = int((v["verdict"] == "unresolved").sum())
    prompts = int(v["n/prompts"].max()) if "n/prompts" in v else "?"
    head = f"{n_un} of {len(v)} points unresolved, on {prompts} prompts."
    if pt.empty:
        return head + "\n"

    rows = power_rows(pt, thousands=True)
    heads = ["curve", "algo", "knob", "KL", "verdict", "min. detectable drop", "prompts x", "prompts needed"]
    return head + "\n\n```text\n" + render(heads, rows).strip("\n") + "\n```\n"


# ---- staleness -------------------------------------------------------------------------------
def expected_ids(meta: dict, repo: Path = REPO) -> list[str]:
    """The point ids the run's command expands to with the current code."""
    from goodhart.pipeline.sweeps.spec import expand_selected, load_sweep

    sweep, base = load_sweep(repo / meta["sweep_file"])
    return [p.id for p in expand_selected(sweep, base, meta.get("overrides", [])).points]


def problems(block: Block, runs: Path = RUNS, repo: Path = REPO) -> list[str]:
    """Why a block is stale ([] when it is what its stored run and the current code give)."""
    from goodhart.pipeline.sweeps.point import alarm_stale

    where = f"{block.page.relative_to(repo)}: results block '{block.run}'"
    try:
        meta, df = load_run(block.run, runs)
        want = draw(block.run, block.options, runs)
    except (FileNotFoundError, ValueError, KeyError) as e:
        return [f"{where}: {e}"]
    out = []
    if block.text != want:
        out.append(f"{where} is not what docs/runs/{block.run}/ draws now: run `python docs/tables.py write`")
    now = expected_ids(meta, repo)
    if sorted(now) != sorted(meta["point_ids"]):
        out.append(
            f"{where}: `{meta['command']}` now runs other points ({len(set(now) - set(meta['point_ids']))} new ids): "
            "re-run it and store it again (`python docs/tables.py snapshot`)"
        )
    if df is None:  # an arena run: the alarm rule versions its results were computed under
        from goodhart.eval import metrics as M

        rows = [{M.ALARM_LEVEL: "recorded", M.ALARM_VERSION: v} for v in meta.get("alarm_versions", [])]
    else:
        rows = df.to_dict("records")
    stale = sorted({why for row in rows if (why := alarm_stale(row))})
    if stale:
        out.append(f"{where}: its alarm column is stale ({stale[0]}): re-run it and store it again")
    return out


def check(runs: Path = RUNS, repo: Path = REPO) -> list[str]:
    return [p for b in blocks(repo) for p in problems(b, runs, repo)]


def write(runs: Path = RUNS, repo: Path = REPO) -> list[Path]:
    """Redraw every marked block from its stored run; the pages that changed."""
    changed = []
    for page in pages(repo):
        text = page.read_text()

        def fill(m: re.Match) -> str:
            run, opts = parse_spec(m.group(2))
            return m.group(1) + draw(run, opts, runs) + m.group(4)

        new = BLOCK.sub(fill, text)
        if new != text:
            page.write_text(new)
            changed.append(page)
    return changed


# ---- storing a run ---------------------------------------------------------------------------
MACHINE_KEYS = ("cpu_model", "cores", "torch", "transformers", "trl", "python", "platform")
"""What run.json keeps of the machine (this process's threads and load are not the run's)."""


def first_pass_ids(sweep_dir: Path) -> list[str]:
    """The ids of the points the sweep's command expands to: every point of points.json but those
    resolve rounds added (resolve.json: look > 1; they follow from the first pass's results)."""
    looks = (
        json.loads((sweep_dir / "resolve.json").read_text())["points"] if (sweep_dir / "resolve.json").is_file() else {}
    )
    return [e["id"] for e in json.loads((sweep_dir / "points.json").read_text()) if int(looks.get(e["id"], 1)) == 1]


def snapshot(
    sweep_dir: Path,
    sweep_file: str,
    overrides: list[str],
    load: list[float],
    wall: float | None = None,
    runs: Path = RUNS,
    repo: Path = REPO,
    arena: bool = False,
    commit: str | None = None,
) -> Path:
    """Store a finished sweep as docs/runs/<its name>/: its results.csv and run.json (`load`: the
    load averages seen while it ran; `wall`: its wall time in seconds). With `arena`: its report's
    cell tables (run `goodhart report` first) instead of results.csv, and the alarm rule versions
    of its results in run.json. `commit`: the commit it ran at, when not the one checked out now."""
    sys.path.insert(0, str(repo / "benchmarks"))
    import common as B  # the benchmarks' machine record: CPU model, cores, torch, threads

    from goodhart.pipeline.io import atomic_write_json

    meta = {
        "command": " ".join(["goodhart sweep", sweep_file, *overrides]),
        "sweep_file": sweep_file,
        "overrides": overrides,
        "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((sweep_dir / "results.csv").stat().st_mtime)),
        "machine": {k: v for k, v in B.machine().items() if k in MACHINE_KEYS},
        "wall_seconds": wall,
        "load": load,
        "commit": commit
        or subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip(),
        "point_ids": first_pass_ids(sweep_dir),
    }
    if sorted(meta["point_ids"]) != sorted(expected_ids(meta, repo)):
        raise SystemExit(f"{sweep_dir} is not what `{meta['command']}` runs now (other point ids): re-run it first")
    out = runs / sweep_dir.name
    if arena:
        import pandas as pd

        from goodhart.eval import metrics as M

        rep = sweep_dir / "report"
        if not all((rep / f.removesuffix(".gz")).is_file() for f in ARENA_TABLES):
            raise SystemExit(
                f"{rep}: no arena tables (arena.csv, arena_trend.csv): run `goodhart report {sweep_dir}` first"
            )
        df = pd.read_csv(sweep_dir / "results.csv")
        kept = df[df[M.ALARM_LEVEL].notna()] if M.ALARM_LEVEL in df else df.iloc[:0]
        versions = kept[M.ALARM_VERSION].fillna(2) if M.ALARM_VERSION in kept else pd.Series([2] * len(kept))
        meta["alarm_versions"] = sorted({int(v) for v in versions})
        out.mkdir(parents=True, exist_ok=True)
        for f in ARENA_TABLES:  # the report's own bytes, gzipped (mtime 0: the same tables, the same file)
            (out / f).write_bytes(gzip.compress((rep / f.removesuffix(".gz")).read_bytes(), mtime=0))
        (out / "results.csv").unlink(missing_ok=True)
        atomic_write_json(out / "run.json", meta)
        return out
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sweep_dir / "results.csv", out / "results.csv")
    if (sweep_dir / "resolve.json").is_file():
        shutil.copyfile(sweep_dir / "resolve.json", out / "resolve.json")
    atomic_write_json(out / "run.json", meta)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="verb", required=True)
    s = sub.add_parser("snapshot", help="store a finished sweep directory as docs/runs/<name>/")
    s.add_argument("sweep_dir", type=Path)
    s.add_argument("sweep_file", help="the sweep file it ran, relative to the repository root")
    s.add_argument("overrides", nargs="*", help="the key=value overrides it ran with")
    s.add_argument("--load", default="", help="load averages during the run, comma-separated (uptime)")
    s.add_argument("--wall", type=float, default=None, help="the run's wall time in seconds")
    s.add_argument("--arena", action="store_true", help="an arena run: store its report's cell tables, not results.csv")
    s.add_argument("--commit", default=None, help="the commit the run was made at (default: the one checked out)")
    sub.add_parser("write", help="redraw every marked block from its stored run")
    sub.add_parser("check", help="exit 1 naming every stale block")
    a = ap.parse_args(argv)
    if a.verb == "snapshot":
        load = [float(x) for x in a.load.split(",") if x.strip()]
        print(
            f"stored {snapshot(a.sweep_dir, a.sweep_file, a.overrides, load, a.wall, arena=a.arena, commit=a.commit)}"
        )
        return 0
    if a.verb == "write":
        for p in write():
            print(f"rewrote {p.relative_to(REPO)}")
        return 0
    found = check()
    for p in found:
        print(p, file=sys.stderr)
    print(f"{len(blocks())} results block(s), {len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
