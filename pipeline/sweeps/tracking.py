"""MLflow, the record: one experiment per sweep, a parent run per sweep invocation, a child
run per point. Uses MlflowClient with explicit run ids (no global active run), so several
processes can log to one store.

Default store: sqlite:///<cwd>/mlflow.db (MLflow 3's own default; a plain ./mlruns directory
store is refused by MLflow 3). SQLite allows one writer at a time: writes retry with backoff on
"database is locked", which is enough for a local `--jobs K`; clusters should use a server.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from goodhart.eval.metrics import sanitize
from goodhart.pipeline.config.schema import TrackingConfig
from goodhart.pipeline.errors import TrackingError

T = TypeVar("T")
MAX_PARAM_LEN = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH
BATCH = 100  # params, and tags, per log_batch call (MAX_PARAMS_TAGS_PER_BATCH)
ENTITIES = 1000  # metrics + params + tags per log_batch call (MAX_ENTITIES_PER_BATCH, MAX_METRICS_PER_BATCH)


def resolve_uri(cfg: TrackingConfig | None = None) -> str:
    if cfg is not None and cfg.uri:
        return cfg.uri  # checked by the config (schema.check_uri)
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        from goodhart.pipeline.config.schema import check_uri

        try:
            return check_uri(env)
        except ValueError as e:
            raise TrackingError(f"MLFLOW_TRACKING_URI={env!r}: {e}") from None
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI (None for other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    rest = uri[len("sqlite:///") :].split("?", 1)[0]
    return Path(rest) if rest not in ("", ":memory:") else None


def store_exists(uri: str) -> bool:
    """False only for a SQLite store whose file is not there yet (opening it would create it)."""
    p = sqlite_path(uri)
    return p is None or p.is_file()


@contextlib.contextmanager
def _file_lock(path: Path):
    """An exclusive flock on `path` (created if need be), released on exit or death."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


HEALTH_TIMEOUT = 8.0  # seconds a tracking server gets to answer /health before a sweep starts


def check_store(uri: str) -> None:
    """One health check of the tracking store before any compute: a one-line TrackingError, within
    ~10 s, when it cannot be used. A new SQLite store is created here, under a file lock, so that
    two sweeps starting together on one new store do not both run MLflow's schema creation."""
    import urllib.error
    import urllib.parse
    import urllib.request

    what = "fix tracking.uri (or MLFLOW_TRACKING_URI), or set tracking.enabled=false"
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=HEALTH_TIMEOUT) as r:
                r.read(64)
        except urllib.error.HTTPError as e:
            if e.code >= 500:  # 401/403/404: auth or an old server; the API call below decides
                raise TrackingError(f"tracking server {uri} answered /health with HTTP {e.code}; {what}") from None
        except (OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise TrackingError(
                f"tracking server {uri} is not reachable ({reason}); start it (`goodhart server`), or {what}"
            ) from None
        # Up is not usable: a proxy that answers 403 everywhere, or /health 200 with the API at
        # 503. One real API call, through MLflow's own client (its auth, TLS settings), one try.
        try:
            with _one_try():
                Tracker(uri).client.search_experiments(max_results=1)
        except Exception as e:
            import re

            code = re.search(r"(?:error code |too many |\b)([45]\d\d)(?: != 200| error responses)", str(e))
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            why = f"answers HTTP {code.group(1)}" if code else f"fails ({type(e).__name__}: {first})"
            raise TrackingError(f"tracking server {uri} is up but its API {why}; {what}") from None
        return
    db = sqlite_path(uri)
    if db is not None and not db.parent.is_dir():
        raise TrackingError(f"tracking store {uri}: directory {db.parent} does not exist; {what}")
    try:
        if db is not None:
            with _file_lock(db.parent / f".{db.name}.create.lock"):
                if not db.exists():
                    from goodhart.pipeline.sweeps.sqlite_store import seed_new_store

                    _remove_leftovers(db)

                    # a copy of an empty store (not MLflow's ~50 migrations again); without a
                    # template, MLflow creates it beside its name and it is renamed into place
                    if not seed_new_store(db):
                        _create_sqlite_store(db)
                _check_writable(db, uri, what)
                Tracker(uri).client.search_experiments(max_results=1)
        else:
            Tracker(uri).client.search_experiments(max_results=1)
    except TrackingError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise TrackingError(f"tracking store {uri} cannot be used ({type(e).__name__}: {first}); {what}") from None


LOCK_WAIT = 10.0  # seconds a SQLite store may stay write-locked by another process before a sweep starts


def _check_writable(db: Path, uri: str, what: str) -> None:
    """One write transaction opened and rolled back on the SQLite file itself, waiting at most
    LOCK_WAIT s: a store another process holds locked (an open transaction in a `sqlite3` shell,
    a hung writer) is one line naming the holders, not minutes of MLflow's retries and tracebacks.
    A sweep beside this one holds the lock for milliseconds at a time and passes."""
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=LOCK_WAIT)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.rollback()
        finally:
            con.close()
    except sqlite3.OperationalError as e:
        if "locked" not in str(e) and "busy" not in str(e):
            raise
        held = _holders(db)
        by = f" (open in {held})" if held else ""
        raise TrackingError(
            f"tracking store {uri} is locked by another process{by}: no write possible for {LOCK_WAIT:g} s; "
            f"end that process or its open transaction, or {what}"
        ) from None


def _holders(db: Path) -> str:
    """`pid 123 (sqlite3), ...`: other processes with the file open (Linux /proc; '' elsewhere)."""
    me, out = os.getpid(), []
    try:
        target = db.resolve()
        for fd_dir in Path("/proc").glob("[0-9]*/fd"):
            pid = int(fd_dir.parent.name)
            if pid == me:
                continue
            try:
                if any(Path(os.readlink(f)) == target for f in fd_dir.iterdir()):
                    name = (fd_dir.parent / "comm").read_text().strip()
                    out.append(f"pid {pid} ({name})")
            except OSError:  # gone, or not ours to look at
                continue
    except OSError:
        return ""
    return ", ".join(out[:5])


def _remove_leftovers(db: Path) -> None:
    """What a creator killed before its rename left beside `db` (a half-made schema, a part-copied
    template). Only called under the store's creation lock, so no live creator owns them."""
    for pattern in (f".{db.name}.creating-*", f".{db.name}.*.tmp"):
        for stale in db.parent.glob(pattern):
            stale.unlink(missing_ok=True)


def _create_sqlite_store(db: Path) -> None:
    """A new SQLite store, created beside its final name and renamed into place: MLflow builds the
    schema in several transactions, and a kill -9 midway would leave a store every later run
    refuses ("table ... already exists"). Holds the creation lock (check_store)."""
    tmp = db.parent / f".{db.name}.creating-{os.getpid()}"
    Tracker(f"sqlite:///{tmp}").client.search_experiments(max_results=1)
    os.replace(tmp, db)


@contextlib.contextmanager
def _one_try():
    """MLflow's HTTP client without its retries (7, with backoff: minutes on a 503) and with a short timeout."""
    from goodhart.pipeline.base.threads import temporary_environ

    keys = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(HEALTH_TIMEOUT))}
    with temporary_environ(keys):
        yield


def retry(fn: Callable[[], T], attempts: int = 8) -> T:
    """Retry on SQLite lock contention (and transient server hiccups) with jittered backoff."""
    for i in range(attempts):
        try:
            return fn()
        except Exception as e:  # mlflow wraps sqlalchemy errors in MlflowException
            text = str(e).lower()
            transient = "locked" in text or "busy" in text or "connection" in text
            if not transient or i == attempts - 1:
                raise
            time.sleep(min(5.0, 0.1 * 2**i) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """Dotted keys -> string values, for MLflow params (lists of configs get index keys)."""
    out: dict[str, str] = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(tree, list) and any(isinstance(x, dict) for x in tree):
        for i, v in enumerate(tree):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[sanitize(prefix[:-1])[:250]] = str(tree)[:MAX_PARAM_LEN]
    return out


# MLflow >= 3 chooses an experiment's default page from this tag: without it the UI infers the
# kind from what the experiment holds and may open on the GenAI overview (traces, prompts);
# "custom_model_development" is its "machine learning" kind, which opens on the runs table.
# (The values are those of the UI's own kind selector, mlflow/server/js: ExperimentKind.)
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


class Tracker:
    """A thin, retrying wrapper over MlflowClient for one tracking URI."""

    def __init__(self, uri: str):
        from mlflow import MlflowClient

        self.uri = uri
        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
        if uri.startswith("sqlite:"):  # WAL commits: a fresh store ~3x, each run ~2x faster (sqlite_store.py)
            from goodhart.pipeline.sweeps.sqlite_store import fast_sqlite_commits

            fast_sqlite_commits()
        self.client = MlflowClient(tracking_uri=uri)
        self._artifact_uris: dict[str, str] = {}  # run id -> artifact_uri, of the runs created here

    def experiment_id(self, name: str) -> str:
        """The experiment `name` (created if missing), tagged so the UI opens on its runs table."""

        def get_or_create() -> str:
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                try:
                    return self.client.create_experiment(name, tags=dict([EXPERIMENT_KIND]))
                except Exception:  # another process created it first
                    exp = self.client.get_experiment_by_name(name)
                    if exp is None:
                        raise
            if EXPERIMENT_KIND[0] not in exp.tags:  # a store written before the tag: mark it once
                self.client.set_experiment_tag(exp.experiment_id, *EXPERIMENT_KIND)
            return exp.experiment_id

        return retry(get_or_create)

    def mark_for_runs_table(self, experiment_id: str) -> None:
        """Tag an existing experiment (a sweep recorded before the tag) so the UI opens on its runs."""
        exp = retry(lambda: self.client.get_experiment(experiment_id))
        if EXPERIMENT_KIND[0] not in exp.tags:
            retry(lambda: self.client.set_experiment_tag(experiment_id, *EXPERIMENT_KIND))

    def start_run(
        self,
        experiment_id: str,
        name: str,
        parent_id: str | None = None,
        tags: dict[str, str] | None = None,
        start_time: int | None = None,
    ) -> str:
        tags = dict(tags or {})
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        run = retry(lambda: self.client.create_run(experiment_id, start_time=start_time, run_name=name, tags=tags))
        self._artifact_uris[run.info.run_id] = run.info.artifact_uri
        return run.info.run_id

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        self.log_batch(run_id, params=params)

    def log_metrics(self, run_id: str, metrics: dict[str, Any], step: int = 0) -> None:
        self.log_batch(run_id, metric_entities(metrics, step))

    def log_batch(
        self,
        run_id: str,
        metrics: list[Any] = (),  # type: ignore[assignment]
        tags: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> None:
        """Params, metrics (mlflow Metric entities) and tags in as few round trips as MLflow
        allows: one log_batch per 1,000 entities, at most 100 of them params and 100 tags."""
        from mlflow.entities import Param, RunTag

        param_items = [Param(k, v) for k, v in (params or {}).items()]
        tag_items = [RunTag(k, str(v)[:8000]) for k, v in (tags or {}).items()]
        metrics = list(metrics)
        while metrics or tag_items or param_items:
            p, param_items = param_items[:BATCH], param_items[BATCH:]
            t, tag_items = tag_items[:BATCH], tag_items[BATCH:]
            room = ENTITIES - len(p) - len(t)
            m, metrics = metrics[:room], metrics[room:]
            retry(lambda m=m, p=p, t=t: self.client.log_batch(run_id, metrics=m, params=p, tags=t))

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.log_batch(run_id, tags=tags)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        retry(lambda: self.client.log_artifact(run_id, str(path), artifact_path))

    def log_files(self, run_id: str, files: dict[str, Path | str | bytes], artifact_path: str | None = None) -> None:
        """Several artifacts in one call: {name in the run: a file, or its text/bytes}. MLflow
        stores a folder in one go; for a run this Tracker created, straight into its artifact
        location (no read of the run back from the store to find it, as the client does)."""
        import tempfile

        if not files:
            return
        with tempfile.TemporaryDirectory(prefix="goodhart-artifacts-") as d:
            for name, what in files.items():
                dst = Path(d) / name
                if isinstance(what, (str, bytes)) and not isinstance(what, Path):
                    dst.write_bytes(what.encode() if isinstance(what, str) else what)
                else:
                    dst.symlink_to(Path(what).resolve())  # (copied by MLflow, not here)
            repo = self._artifact_repo(run_id)
            if repo is not None:
                retry(lambda: repo.log_artifacts(d, artifact_path))
            else:
                retry(lambda: self.client.log_artifacts(run_id, d, artifact_path))

    def _artifact_repo(self, run_id: str) -> Any:
        """MLflow's artifact repository of a run this Tracker created (what MlflowClient resolves
        from the run's artifact_uri); None for other runs, and on Databricks (the client adds
        the workspace profile to the URI there)."""
        uri = self._artifact_uris.get(run_id)
        if uri is None or self.uri.startswith("databricks"):
            return None
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        return get_artifact_repository(uri, tracking_uri=self.uri)

    def log_table(self, run_id: str, df, artifact_file: str) -> None:
        retry(lambda: self.client.log_table(run_id, data=df, artifact_file=artifact_file))

    def finish(self, run_id: str, status: str = "FINISHED", attempts: int = 8, end_time: int | None = None) -> None:
        retry(lambda: self.client.set_terminated(run_id, status=status, end_time=end_time), attempts)


def metric_entities(metrics: dict[str, Any], step: int = 0, timestamp: int | None = None) -> list[Any]:
    """MLflow Metric entities of the numbers in `metrics` (sanitized names; bools and text left
    out), stamped `timestamp` (ms since the epoch; now by default)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000) if timestamp is None else int(timestamp)
    return [
        Metric(sanitize(k), float(v), now, step)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]


LOGGED_ARTIFACTS = "mlflow.loggedArtifacts"
"""The run tag that lists a run's tables (what MlflowClient.log_table sets): the UI shows them."""


def table_artifact(rows: list[dict[str, Any]], first: tuple[str, ...] = ()) -> str:
    """A table as MlflowClient.log_table writes it (pandas' orient="split" JSON: columns, data),
    the columns in `first` first; NaN as null. Made here, not through log_table, which reads the
    run back twice and sets a tag in calls of their own (~0.2 s a point on a SQLite store)."""
    import json
    import math

    cols: list[str] = [c for c in first if any(c in r for r in rows)]
    for r in rows:
        cols += [c for c in r if c not in cols]

    def cell(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v.item() if hasattr(v, "item") else v

    return json.dumps({"columns": cols, "data": [[cell(r.get(c)) for c in cols] for r in rows]})


def table_tag(*names: str) -> dict[str, str]:
    """The LOGGED_ARTIFACTS tag naming these table artifacts (as log_table records them)."""
    import json

    return {LOGGED_ARTIFACTS: json.dumps([{"path": n, "type": "table"} for n in names])}


class StepLog:
    """Per-step metrics of one run, sent in batches: at most one log_batch every `every` seconds
    (a PPO step is well under a second on the demo's model: one call each was most of a trained
    point's tracking), the rest with the run's final numbers (`take`). The run's params go with
    the first batch sent (a short point logs everything in one call). Nothing is lost on disk
    meanwhile: the point's train_metrics.jsonl has every step at once."""

    def __init__(self, tracker: Tracker, run_id: str, every: float = 5.0):
        self.tracker, self.run_id, self.every = tracker, run_id, every
        self.pending: list[Any] = []
        self.params: dict[str, str] = {}  # not sent yet
        self.last = time.monotonic()

    def add(self, metrics: dict[str, Any], step: int) -> None:
        self.pending += metric_entities(metrics, step)
        if time.monotonic() - self.last >= self.every:
            self.flush()

    def take(self) -> list[Any]:
        """The metrics not sent yet (the caller sends them), and nothing pending after."""
        out, self.pending = self.pending, []
        self.last = time.monotonic()
        return out

    def take_params(self) -> dict[str, str]:
        """The params not sent yet (the caller sends them)."""
        out, self.params = self.params, {}
        return out

    def flush(self) -> None:
        out, params = self.take(), self.take_params()
        if out or params:
            self.tracker.log_batch(self.run_id, out, params=params)


def tracker_for(cfg: TrackingConfig) -> Tracker | None:
    return Tracker(resolve_uri(cfg)) if cfg.enabled else None
