"""`goodhart server`: a lean MLflow tracking server, the tracking URI for SLURM sweeps.

Many array tasks writing one SQLite file is what a server is for: the server is the only
process that touches the database, tasks talk HTTP to it (and upload artifacts through it).
Lean, as measured on a 2-core machine: one worker and no job-execution consumers
(`MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false ... --workers 1`) is healthy in ~6 s at ~0.5 GB;
the defaults start 12 processes and ~1.6 GB.

Bound to 127.0.0.1 unless told otherwise. On a cluster, run it where the compute nodes can
reach it (`--host 0.0.0.0` on the login node, or on a node of its own) and use the URI it
prints; anyone who can reach that port can read and write the runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def default_store() -> str:
    """The same store `goodhart ui` and local sweeps use by default: ./mlflow.db."""
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def public_uri(host: str, port: int) -> str:
    """The URI clients should use: loopback as given, a wildcard bind as this machine's name."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"  # an IPv6 address goes in brackets


def allowed_hosts(host: str) -> str | None:
    """MLflow rejects requests whose Host header it does not know (DNS-rebinding guard). Its default
    allows localhost and private IPs; a server bound beyond loopback must also accept its own name."""
    if host in LOOPBACK:
        return None
    names = {socket.getfqdn(), socket.gethostname(), socket.gethostname().split(".")[0], "localhost", "127.0.0.1"}
    if host not in ("0.0.0.0", "::"):
        names.add(host)
    pats = sorted(n for n in names if n)
    return ",".join([*pats, *(f"{n}:*" for n in pats), "10.*", "172.*", "192.168.*"])


def server_argv(host: str, port: int, store: str, artifacts: str, allowed: str | None = None) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        store,
        "--artifacts-destination",
        artifacts,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    allowed = allowed or allowed_hosts(host)
    if allowed:
        argv += ["--allowed-hosts", allowed]
    return argv


def healthy(uri: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def artifact_note(store: str, artifacts: str, most: int = 4) -> str:
    """Where the artifacts the UI shows really are. `--artifacts-destination` holds only what is
    logged through the server; runs a local sweep logged straight to the store keep theirs in
    their experiment's own location (mlruns/<id> beside the database by default)."""
    try:
        from mlflow import MlflowClient

        exps = [e for e in MlflowClient(tracking_uri=store).search_experiments() if e.name != "Default"]
    except Exception as e:  # the store is not readable from here: say so, do not guess
        return f"artifacts: uploads through this server go to {artifacts}; the store's own locations unknown ({type(e).__name__})"
    listed = ", ".join(f"'{e.name}' in {e.artifact_location}" for e in exps[:most])
    more = f" and {len(exps) - most} more" if len(exps) > most else ""
    where = f"artifacts: {listed}{more}; " if exps else "artifacts: "
    return where + f"uploads through this server go to {artifacts}"


def runs_links(store: str, uri: str, most: int = 4) -> list[str]:
    """`runs of 'NAME': URI/#/experiments/ID/runs` for the store's latest experiments: MLflow 3.17
    opens an experiment on its GenAI overview page, and the runs table (every point of a sweep,
    its metrics and params) is this link. Nothing when the store cannot be read from here."""
    from goodhart.pipeline.sweeps.tracking import store_exists

    if not store_exists(store):  # opening a missing SQLite store would create it (and its directory)
        return []
    try:
        from mlflow import MlflowClient

        exps = MlflowClient(tracking_uri=store).search_experiments(order_by=["last_update_time DESC"])
    except Exception:  # the page still opens; only the links are missing
        return []
    exps = [e for e in exps if e.name != "Default"]
    lines = [f"runs of '{e.name}': {uri}/#/experiments/{e.experiment_id}/runs" for e in exps[:most]]
    if len(exps) > most:
        lines.append(f"({len(exps) - most} more experiment(s): the list is at {uri}/#/experiments)")
    return lines


def serve(
    host: str = "127.0.0.1",
    port: int = 5000,
    store: str | None = None,
    artifacts: str | None = None,
    allowed: str | None = None,
    ready_timeout: float = 120.0,
) -> int:
    """Run the server in the foreground until Ctrl-C or SIGTERM; then stop it and its workers."""
    store = store or default_store()
    artifacts = artifacts or str(Path.cwd() / "mlartifacts")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    # Its own process group, so stopping it stops uvicorn's workers too (and nothing else).
    proc = subprocess.Popen(server_argv(host, port, store, artifacts, allowed), env=env, start_new_session=True)

    def _term(signum, frame):  # SIGTERM: stop like Ctrl-C
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _term)
    local = f"http://127.0.0.1:{port}" if host in ("0.0.0.0", "::", "localhost") else public_uri(host, port)
    try:
        t0 = time.time()
        while not healthy(local):
            if proc.poll() is not None:
                print(
                    f"goodhart: error: the MLflow server exited (code {proc.returncode}) before it was healthy; "
                    f"is port {port} free?",
                    file=sys.stderr,
                )
                return 2
            if time.time() - t0 > ready_timeout:
                print(f"goodhart: error: the MLflow server is not healthy after {ready_timeout:.0f} s", file=sys.stderr)
                return 2
            time.sleep(0.3)
        uri = public_uri(host, port)
        print(f"MLflow tracking server for {store} is up ({time.time() - t0:.1f} s)", flush=True)
        print(f"  {artifact_note(store, artifacts)}", flush=True)
        print(f"  export MLFLOW_TRACKING_URI={uri}      (or tracking.uri={uri} in a config)", flush=True)
        print(f"  UI: {uri}   Ctrl-C (or SIGTERM to pid {os.getpid()}) stops it", flush=True)
        for line in runs_links(store, uri):
            print(f"  {line}", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, old)
        stop_group(proc)


def stop_group(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """TERM, then KILL, the server's process group (its pid is the group id: start_new_session)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        t0 = time.time()
        while time.time() - t0 < timeout:
            proc.poll()
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
    proc.poll()
