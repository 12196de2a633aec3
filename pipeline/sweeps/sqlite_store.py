"""Faster commits for a SQLite MLflow store: write-ahead logging (WAL) with synchronous=NORMAL.

MLflow opens SQLite in its default rollback-journal mode with synchronous=FULL: every call
(create a run, log a batch, end it) is a transaction with several fsyncs. That made creating a
fresh store cost 12-15 s and each run ~0.3-0.5 s on the benchmark machine; WAL + NORMAL cut
them to 4-6 s and ~0.15-0.2 s (benchmarks/README.md). WAL is crash-safe for the database (a
killed process loses nothing committed); after a power cut the last commits may be lost, which
a record of results that also live in the sweep directory can afford. WAL needs the processes
on one machine (shared memory beside the file), which is already the condition for a SQLite
store here (SLURM refuses one unless --allow-sqlite, "one machine's local disk"). The file
keeps mlflow.db-wal / mlflow.db-shm beside it while in use.
"""

from __future__ import annotations

from pathlib import Path

_installed = {"done": False}


def fast_sqlite_commits() -> None:
    """Set WAL + synchronous=NORMAL on every SQLite connection SQLAlchemy opens in this process
    (MLflow's store among them); other databases are left alone. Idempotent."""
    if _installed["done"]:
        return
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def on_connect(dbapi_conn, record) -> None:
        if not isinstance(dbapi_conn, sqlite3.Connection):
            return
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA journal_mode=WAL")  # persistent in the file; a no-op once set
        except sqlite3.OperationalError:
            pass  # another writer holds the lock right now: this connection keeps the file's mode
        cur.execute("PRAGMA synchronous=NORMAL")  # per connection
        cur.close()

    event.listen(Engine, "connect", on_connect)
    _installed["done"] = True


def seed_new_store(db: Path) -> bool:
    """Create the SQLite store `db` (which must not exist yet) as a copy of an empty store built
    once per machine and MLflow version (<cache>/mlflow-store/): MLflow's own creation of a new
    store runs its ~50 schema migrations, 12-15 s on the benchmark machine, for every new
    directory a user sweeps in. The copy holds MLflow's schema exactly as MLflow made it, with no
    experiment: MLflow adds its Default experiment (with this store's artifact root) on first
    open. Returns False, creating nothing, when no template could be made (MLflow then creates
    the store itself, as before). Call it under the store's creation lock."""
    import shutil

    from goodhart.pipeline.io import atomic_write

    if db.exists():
        return False
    try:
        tpl = _template()
    except Exception:  # a private MLflow function moved, a read-only cache: MLflow does it itself
        return False
    atomic_write(db, lambda tmp: shutil.copyfile(tpl, tmp))  # a temp copy renamed in, following the umask
    return True


def store_template() -> Path | None:
    """The empty store new SQLite stores are copied from, built now if missing (what `goodhart
    prepare` does once per machine and MLflow version, so that no sweep waits for it); None when
    it cannot be made (each new store is then created by MLflow itself)."""
    try:
        return _template()
    except Exception:
        return None


def _template() -> Path:
    """<cache>/mlflow-store/empty-<mlflow version>.db, built (under a lock) when missing."""
    import fcntl
    import os
    import sqlite3
    import tempfile

    import mlflow
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    from goodhart.pipeline.io import cache_dir

    folder = cache_dir() / "mlflow-store"
    folder.mkdir(parents=True, exist_ok=True)
    tpl = folder / f"empty-{mlflow.__version__}.db"
    if tpl.is_file():
        return tpl
    with open(folder / ".build.lock", "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if tpl.is_file():
            return tpl
        fd, tmp = tempfile.mkstemp(prefix=".empty-", suffix=".db", dir=folder)
        os.close(fd)
        os.unlink(tmp)  # MLflow creates the file itself
        try:
            engine = sqlalchemy.create_engine(f"sqlite:///{tmp}")
            # A file no one else opens until it is renamed into place: no fsync per migration
            # (a crash leaves a temp file that the next build replaces).
            sqlalchemy.event.listen(engine, "connect", _unsynced)
            try:
                _initialize_tables(engine)  # what SqlAlchemyStore does for a new database
            finally:
                engine.dispose()
            con = sqlite3.connect(tmp)
            try:
                con.execute("PRAGMA journal_mode=DELETE")  # one self-contained file to copy
                con.execute("DELETE FROM experiments")  # none: MLflow makes Default on first open
                con.commit()
            finally:
                con.close()
            os.replace(tmp, tpl)
        finally:
            for p in (tmp, tmp + "-wal", tmp + "-shm", tmp + "-journal"):
                if os.path.exists(p):
                    os.unlink(p)
    return tpl


def _unsynced(dbapi_conn, record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA synchronous=OFF")
    cur.execute("PRAGMA journal_mode=MEMORY")
    cur.close()
