"""The record of a sweep invocation: the sweep directory on disk and its MLflow parent run.

On disk (<output_dir>/<name>/): sweep.yaml (the file as given), points.json (index -> id and
overrides, the order SLURM array indices use), points/<id>/ per point, results.csv/.parquet
(one row per point, rewritten at a bounded rate as points finish, and at the end), parent.json
(the MLflow parent run).
In MLflow: one experiment per sweep, one parent run per sweep directory, a child per point.
Imports: config, io, sweeps.point, sweeps.tracking, sweeps.tables, goodhart.eval.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import yaml

from goodhart.pipeline.io import atomic_write, atomic_write_json, atomic_write_text, read_json
from goodhart.pipeline.sweeps.point import (
    ERROR,
    INTERRUPTED,
    RUNNING,
    TrackingTarget,
    load_result,
    result_problem,
    running_state,
)
from goodhart.pipeline.sweeps.runstate import reconcile_children
from goodhart.pipeline.sweeps.spec import Point, SweepConfig
from goodhart.pipeline.sweeps.tracking import Tracker, flatten, retry, tracker_for

PARENT = "parent.json"


def write_sweep_dir(
    root: Path, sweep_file: Path | None, sweep: SweepConfig, points: list[Point], keep_finished: bool = False
) -> None:
    """keep_finished (a partial run: --only/--branch): finished points of points.json that are
    not among `points` stay listed after them, so results.csv still shows the whole study."""
    root.mkdir(parents=True, exist_ok=True)
    clean_leftovers(root)
    if sweep_file is not None:
        atomic_write_text(root / "sweep.yaml", sweep_file.read_text())
    entries = [{"index": p.index, "id": p.id, "overrides": p.overrides} for p in points]
    if keep_finished and (root / "points.json").is_file():
        ids = {p.id for p in points}
        old = [e for e in read_points(root) if e["id"] not in ids and load_result(root / "points" / e["id"])]
        entries += [{**e, "index": len(points) + i} for i, e in enumerate(old)]
    atomic_write_json(root / "points.json", entries)
    from goodhart.pipeline.config.load import to_yaml

    for p in points:
        d = root / "points" / p.id
        d.mkdir(parents=True, exist_ok=True)
        if not (d / "config.yaml").is_file():
            atomic_write_text(d / "config.yaml", to_yaml(p.cfg))


REWRITE = "re-run `goodhart sweep` on the sweep file to rewrite it (finished points are kept)"


def read_points(root: Path) -> list[dict[str, Any]]:
    """points.json: a list of {index, id, overrides}; SweepDirError (one line naming the file)
    when it is torn or of another shape, FileNotFoundError when there is none."""
    from goodhart.pipeline.errors import SweepDirError

    f = root / "points.json"
    if not f.is_file():
        raise FileNotFoundError(f"{root} is not a sweep directory (no points.json)")
    try:
        entries = json.loads(f.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as e:
        raise SweepDirError(f"{f} is unreadable ({type(e).__name__}: {str(e)[:60]}); {REWRITE}") from None
    if not isinstance(entries, list):
        raise SweepDirError(f"{f}: expected a list of points, got {type(entries).__name__}; {REWRITE}")
    for i, e in enumerate(entries):
        ok = (
            isinstance(e, dict)
            and isinstance(e.get("id"), str)
            and e["id"].isalnum()
            and isinstance(e.get("index"), int)
            and isinstance(e.get("overrides"), dict)
        )
        if not ok:
            raise SweepDirError(f"{f}: entry {i} is not {{index, id, overrides}} ({str(e)[:60]}); {REWRITE}")
    return entries


def _read_table(path: Path):
    """results.csv / results.parquet as a DataFrame; SweepDirError (one line) when empty or torn."""
    import pandas as pd

    from goodhart.pipeline.errors import SweepDirError

    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as e:
        raise SweepDirError(
            f"{path} is empty or torn ({type(e).__name__}); re-run `goodhart sweep` (or `goodhart report`) to rebuild it"
        ) from None


def load_results(path: str | Path, need: tuple[str, ...] = (), write: bool = False):
    """The results table of a finished (or running) sweep: one row per point, as ``results.csv``,
    with the metric names of today (columns written under an older name are renamed on reading:
    goodhart.eval.metrics.current_names). Every reader of results goes through here.

    ``path``: a sweep directory (with points.json: read fresh from the points; else its
    results.parquet or results.csv), or a results ``.csv`` / ``.parquet`` file. ``need``: columns
    the table must have (a one-line SweepDirError names the missing ones). ``write``: also rewrite
    the sweep's results.csv / .parquet from its points (the report does).

    ```pycon
    >>> import tempfile, pathlib, pandas as pd
    >>> from goodhart import load_results
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> pd.DataFrame({"point_id": ["a"], "status": ["done"], "kl": [0.5], "tilt/beta": [2.0]}).to_csv(
    ...     d / "results.csv", index=False)
    >>> df = load_results(d)
    >>> df["kl"].tolist(), df["kl/coef"].tolist()  # a column of an older name, renamed
    ([0.5], [2.0])

    ```
    """
    from goodhart.eval import metrics as M
    from goodhart.pipeline.errors import SweepDirError

    p = Path(path)
    if p.is_dir():
        if (p / "points.json").is_file():
            df = write_results(p) if write else results_table(p)
            return _need(M.current_names(df), need, p / "results.csv")
        for name in ("results.parquet", "results.csv"):
            if (p / name).is_file():
                p = p / name
                break
        else:
            raise FileNotFoundError(f"{path}: no results.csv (expected a sweep directory, e.g. runs/demo)")
    if not p.is_file():
        raise FileNotFoundError(f"no such file or sweep directory: {path}")
    if p.suffix not in (".csv", ".parquet"):
        raise SweepDirError(f"{p}: expected a results .csv or .parquet file, or a sweep directory")
    return _need(M.current_names(_read_table(p)), need, p)


def _need(df, need: tuple[str, ...], where: Path):
    from goodhart.pipeline.errors import SweepDirError

    missing = [c for c in need if c not in df]
    if missing:
        raise SweepDirError(
            f"{where} has no column {', '.join(map(repr, missing))}: not a goodhart results table of this version; "
            "re-run the sweep"
        )
    return df


TMP_AGE = 600.0  # seconds: an atomic write's temp file older than this was left by a killed process


def clean_leftovers(root: Path) -> dict[str, int]:
    """What kill -9 leaves: `.NAME.*.tmp` files of atomic writes (older than TMP_AGE, so a live
    SLURM task's write in progress is never touched) and the running.json of a point that is
    done or whose pid on this host is gone. Returns the counts removed."""
    import time

    out = {"tmp": 0, "running": 0}
    now = time.time()
    for d in [root, root / "pools", *(root / "points").glob("*")]:
        if not d.is_dir():
            continue
        for f in d.glob(".*.tmp"):
            try:
                if now - f.stat().st_mtime > TMP_AGE:
                    f.unlink()
                    out["tmp"] += 1
            except OSError:
                pass
        if d.parent.name == "points" and (d / RUNNING).is_file():
            run = running_state(d)
            if load_result(d) is not None or (run is not None and run[0] == "stale"):
                (d / RUNNING).unlink(missing_ok=True)
                out["running"] += 1
    return out


def point_status(root: Path, pid: str) -> str:
    """done (a valid result) | failed | invalid (a result that does not parse or is not finite:
    rerun) | interrupted (rerun) | pending."""
    d = root / "points" / pid
    if load_result(d) is not None:
        return "done"
    run = running_state(d)
    if run is not None and run[0] == "running":  # a retry of a failed point runs too
        return "running"
    if (d / ERROR).is_file():
        return "failed"
    if result_problem(d) is not None:
        return "invalid"
    if (d / INTERRUPTED).is_file():
        return "interrupted"
    return "pending"


def status_detail(root: Path, pid: str) -> str:
    """One line on why a point is not done (empty for done and pending points)."""
    d = root / "points" / pid
    if load_result(d) is None and (d / ERROR).is_file():
        try:
            return str(read_json(d / ERROR).get("error", ""))
        except (OSError, ValueError):
            return f"{ERROR} is unreadable"
    return result_problem(d) or ""


def reward_check(root: Path, pid: str, full: bool = False) -> tuple[str, str] | None:
    """For a done point: ("alarm", why) when its alarm was computed under another alarm rule
    (eval/alarm.py VERSION), ("stale", why) when its reward changed since it ran, ("unchecked", what)
    when that cannot be told without importing user code or reading a large checkpoint (unless
    `full`: then callables and plug-ins are imported, as the sweep's own done check does), or
    ("error", why) when the full check cannot load the reward. None: unchanged, or not done."""
    from goodhart.pipeline.base.identity import Unchecked
    from goodhart.pipeline.config.load import read_yaml, validate
    from goodhart.pipeline.config.schema import RunConfig
    from goodhart.pipeline.sweeps.point import BUILTIN, CONFIG, IDENTITY, alarm_stale, stale_reason

    d = root / "points" / pid
    row = load_result(d)
    if row is not None and (old := alarm_stale(row)) is not None:
        return "alarm", old.removeprefix("its ")
    if row is None or row.get(IDENTITY) == BUILTIN:  # built-in rewards: nothing that can change
        return None
    try:
        cfg = validate(read_yaml(d / CONFIG), RunConfig, source=str(d / CONFIG))
    except Exception as e:  # a config of another version: the sweep rewrites it
        return "unchecked", f"{CONFIG} does not read ({type(e).__name__})"
    try:
        why = stale_reason(cfg, d, row, cheap=not full)
    except Unchecked as u:
        return "unchecked", str(u)
    except Exception as e:  # the user's callable no longer imports, or raised while importing
        return "error", f"its reward does not load: {(str(e).splitlines() or [type(e).__name__])[0][:120]}"
    if why is None:
        return None
    return "stale", f"reward changed since it ran: identity {why.rsplit('identity ', 1)[-1].rstrip(')')}"


def results_table(root: Path):
    """One row per point of points.json: the result if done, else its status."""
    import pandas as pd

    rows = []
    for entry in read_points(root):
        d = root / "points" / entry["id"]
        res = load_result(d)
        if res is None:
            status = point_status(root, entry["id"])
            res = {"point_id": entry["id"], "status": status}
            if status in ("failed", "invalid"):
                res["error"] = status_detail(root, entry["id"])
        rows.append({"index": entry["index"], **{f"set:{k}": _cell(v) for k, v in entry["overrides"].items()}, **res})
    return pd.DataFrame(rows)


def _cell(v: Any) -> Any:
    return (
        v if isinstance(v, (int, float, str, bool)) or v is None else yaml.safe_dump(v, default_flow_style=True).strip()
    )


def write_results(root: Path):
    """results.csv and results.parquet from the point directories, each replaced atomically."""
    df = results_table(root)
    atomic_write(root / "results.csv", lambda p: df.to_csv(p, index=False))
    atomic_write(
        root / "results.parquet",
        lambda p: df.astype({c: str for c in df.columns if df[c].dtype == object}).to_parquet(p, index=False),
    )
    return df


class ResultsWriter:
    """write_results during a sweep at a bounded rate: a rewrite reads every point, so one per
    point is quadratic (289 ms a rewrite at 200 points: ~34 min over 2,000). `maybe()` after each
    point rewrites when `min_interval` seconds have passed and the rewrites so far took at most
    `max_share` of the time; the sweep's own final write_results makes the table complete.
    Readers never see a torn file (each rewrite is atomic) and `status`/`report` read the point
    directories themselves, so a table a few seconds old misleads nobody."""

    def __init__(self, root: Path, min_interval: float = 5.0, max_share: float = 0.05, clock=None):
        import time

        self.root, self.min_interval, self.max_share = root, min_interval, max_share
        self.clock = clock or time.monotonic
        self.last, self.cost = self.clock(), 0.0
        self.writes = 0

    def maybe(self) -> None:
        if self.clock() - self.last >= max(self.min_interval, self.cost / self.max_share):
            self.flush()

    def flush(self):
        t0 = self.clock()
        df = write_results(self.root)
        self.last = self.clock()
        self.cost, self.writes = self.last - t0, self.writes + 1
        return df


# ---------------------------------------------------------------------------------------------
# The MLflow parent run of a sweep directory
# ---------------------------------------------------------------------------------------------
def start_parent(sweep: SweepConfig, points: list[Point], root: Path, backend: str = "local") -> TrackingTarget | None:
    """A new parent run for this sweep directory, recorded in parent.json (None when tracking is off)."""
    cfg0 = points[0].cfg
    tracker = tracker_for(cfg0.tracking)
    if tracker is None:
        return None
    exp = tracker.experiment_id(cfg0.tracking.experiment or sweep.name)
    parent = tracker.start_run(
        exp,
        f"sweep-{sweep.name}",
        tags={
            "goodhart.sweep": sweep.name,
            "goodhart.sweep_dir": str(root.resolve()),
            "goodhart.host": socket.gethostname(),
            "goodhart.points": str(len(points)),
            "goodhart.backend": backend,
        },
    )
    tracker.log_params(parent, flatten(sweep.model_dump(mode="json", exclude={"config"})))
    atomic_write_json(root / PARENT, {"uri": tracker.uri, "experiment_id": exp, "run_id": parent})
    return TrackingTarget(tracker, exp, parent)


def recorded_parent(root: Path) -> TrackingTarget | None:
    """The parent run that parent.json names (None when there is none)."""
    if not (root / PARENT).is_file():
        return None
    try:
        p = read_json(root / PARENT)
        return TrackingTarget(Tracker(p["uri"]), p["experiment_id"], p["run_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a torn or hand-edited parent.json: a new parent run replaces it


def reopen_or_start_parent(
    sweep: SweepConfig, points: list[Point], root: Path, uri: str | None, backend: str = "local"
) -> tuple[TrackingTarget | None, bool]:
    """(target, created): the parent run of parent.json when it is on this URI (set RUNNING
    again for a resume), else a new one. (None, False) when tracking is off."""
    if uri is None:
        return None, False
    old = recorded_parent(root)  # the store was checked (check_store) before the sweep directory was written
    if old is not None and old.tracker.uri == uri:
        try:
            retry(lambda: old.tracker.client.update_run(old.parent_id, status="RUNNING"))
            # Local runs hold the sweep lock, so RUNNING children are a dead invocation's (SLURM
            # tasks may still be live: their runs are left alone).
            closed = {"closed": 0}
            if backend == "local":
                closed = reconcile_children(old.tracker, old.experiment_id, old.parent_id, root)  # type: ignore[arg-type]
            if closed["closed"]:
                print(
                    f"goodhart: notice: closed {closed['closed']} MLflow child run(s) an earlier, stopped run left RUNNING",
                    file=sys.stderr,
                )
            return old, False
        except Exception:
            pass  # deleted or unreadable: start a new one
    return start_parent(sweep, points, root, backend), True


def log_sweep_artifacts(target: TrackingTarget, root: Path, df) -> None:
    """The results table and the sweep's own files, on the parent run."""
    from goodhart.pipeline.sweeps.tables import sweep_tables

    atomic_write_text(root / "tables.txt", sweep_tables(df) + "\n")
    names = ("results.csv", "tables.txt", "sweep.yaml", "points.json")
    target.tracker.log_files(target.parent_id, {n: root / n for n in names if (root / n).is_file()})


def close_parent(root: Path, df, status: str) -> str | None:
    """Log the sweep's artifacts and close its parent run as `status`, if it is still RUNNING.
    Returns the run id closed (None if nothing was). Tracking trouble is a warning, never an
    error: it must not hide the results."""
    target = recorded_parent(root)
    if target is None:
        return None
    try:
        run = retry(lambda: target.tracker.client.get_run(target.parent_id))
        if run.info.status != "RUNNING":
            return None
        log_sweep_artifacts(target, root, df)
        target.tracker.finish(target.parent_id, status)
        return target.parent_id
    except Exception as e:
        print(f"goodhart: warning: could not close the MLflow parent run: {type(e).__name__}: {e}", file=sys.stderr)
        return None
