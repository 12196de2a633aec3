"""A real, private, single-node SLURM on localhost for the tests (no mocks).

`start_cluster(tmp)` brings up, all private to this test session so nothing is shared with
another session or a system install:
  - munged (as user munge) on its own socket with its own random key, in /run/goodhart-munge-*;
  - slurmctld and `slurmd -N localhost` on free ports, state/spool/logs/pids under `tmp`;
  - one node `localhost` (CPUs=2) in partition `debug`, no accounting (no slurmdbd: `sacct`
    does not work, so the status code under test must not need it).
`stop_cluster` stops each daemon by its own pid file. `ensure_slurm()` installs Debian's
slurm-wlm and munge with apt-get when they are missing and we are root (~20-40 s, once).

Facts this relies on (SLURM 22.05 from Debian): no daemon starts by itself (no systemd); munged
must run as user munge with /run/munge owned by it; a minimal slurm.conf (auth/munge,
proctrack/linuxproc, task/none, select/cons_tres with CR_Core) is enough for one node.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("sbatch", "squeue", "scontrol", "scancel", "slurmctld", "slurmd", "munged")


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]


def ensure_slurm() -> str | None:
    """Install slurm-wlm + munge if missing. Returns None when ready, else why not (a skip reason)."""
    if not missing_binaries():
        return None
    if os.geteuid() != 0:
        return (
            f"SLURM binaries missing ({', '.join(missing_binaries())}) and not root, cannot apt-get install slurm-wlm"
        )
    if shutil.which("apt-get") is None:
        return f"SLURM binaries missing ({', '.join(missing_binaries())}) and no apt-get to install slurm-wlm"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            return f"`{' '.join(cmd)}` failed (rc {r.returncode}): {(r.stderr or r.stdout).strip()[-300:]}"
    still = missing_binaries()
    return f"slurm-wlm installed but still missing: {', '.join(still)}" if still else None


def _sbin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Cluster:
    root: Path
    conf: Path
    munge_dir: Path
    pid_files: dict[str, Path] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        r = subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} -> rc {r.returncode}: {r.stderr.strip()}")
        return r

    def node_state(self) -> str:
        r = self.run("sinfo", "-h", "-N", "-o", "%T", check=False)
        return r.stdout.strip()

    def logs(self) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log"):
            p = self.root / name
            if p.is_file():
                out.append(f"--- {name}\n" + "\n".join(p.read_text().splitlines()[-30:]))
        return "\n".join(out)


SLURM_CONF = """\
# A single-node test cluster (goodhart tests/slurm_cluster.py).
ClusterName=goodhart-test
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: also how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket={munge_socket},cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MailProg=/bin/true
# Schedule at once on submit and on every task end (defaults wait seconds between passes).
# sched_interval=1: a requeued job is started as soon as it is eligible again (default 60 s).
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=1
ReturnToService=2
MinJobAge=300
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def _start_munged() -> Path:
    """A private munged (own socket, key, pid) as user munge; returns its directory."""
    user = pwd.getpwnam("munge")
    d = Path(tempfile.mkdtemp(prefix="goodhart-munge-", dir="/run" if os.access("/run", os.W_OK) else None))
    key = d / "munge.key"
    key.write_bytes(os.urandom(128))
    for p in (d, key):
        os.chown(p, user.pw_uid, user.pw_gid)
    os.chmod(d, 0o755)  # munged requires execute permission for all on its socket dir
    os.chmod(key, 0o600)
    sock = d / "munge.socket"
    cmd = [
        _sbin("munged"),
        f"--socket={sock}",
        f"--key-file={key}",
        f"--pid-file={d / 'munged.pid'}",
        f"--log-file={d / 'munged.log'}",
        f"--seed-file={d / 'munged.seed'}",
        "--num-threads=2",
    ]
    r = subprocess.run(["runuser", "-u", "munge", "--", *cmd], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(
            f"munged failed to start: {r.stderr.strip()} {(d / 'munged.log').read_text() if (d / 'munged.log').exists() else ''}"
        )
    _wait(lambda: sock.exists(), 10, "munged socket")
    return d


def _wait(pred, timeout: float, what: str, every: float = 0.1) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def start_cluster(root: Path) -> Cluster:
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool"):
        (root / sub).mkdir(exist_ok=True)
    munge_dir = _start_munged()
    ctld_port, slurmd_port = _free_ports(2)
    conf = root / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            root=root, ctld_port=ctld_port, slurmd_port=slurmd_port, munge_socket=munge_dir / "munge.socket"
        )
    )
    c = Cluster(root, conf, munge_dir, {"munged": munge_dir / "munged.pid"})
    env = c.env
    # -i: ignore saved state (a fresh cluster every session).
    subprocess.run([_sbin("slurmctld"), "-i", "-f", str(conf)], env=env, check=True, timeout=30)
    c.pid_files["slurmctld"] = root / "slurmctld.pid"
    subprocess.run([_sbin("slurmd"), "-N", "localhost", "-f", str(conf)], env=env, check=True, timeout=30)
    c.pid_files["slurmd"] = root / "slurmd.pid"
    try:
        _wait(lambda: c.node_state() == "idle", 30, "node localhost to be idle", 0.2)
    except TimeoutError as e:
        stop_cluster(c)
        raise RuntimeError(f"{e}; state {c.node_state()!r}\n{c.logs()}") from None
    return c


def _pid(p: Path) -> int | None:
    try:
        return int(p.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop_cluster(c: Cluster) -> None:
    """Stop every daemon this session started, by its pid file: slurmd, slurmctld, munged."""
    for name in ("slurmd", "slurmctld", "munged"):
        pf = c.pid_files.get(name)
        pid = _pid(pf) if pf else None
        if pid is None:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        try:
            _wait(lambda: not _alive(pid), 10, f"{name} (pid {pid}) to stop")
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(c.munge_dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as stopped.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# A tracking server, started the way users start it (`goodhart server`), stopped by its pid.
# ---------------------------------------------------------------------------------------------
@dataclass
class Server:
    proc: subprocess.Popen
    uri: str
    log: Path
    db: Path  # the SQLite file behind it


def start_tracking_server(root: Path, timeout: float = 180) -> Server:
    """`goodhart server --port P --backend-store-uri sqlite:///root/mlflow.db` on 127.0.0.1."""
    import sys
    import urllib.request

    root.mkdir(parents=True, exist_ok=True)
    (port,) = _free_ports(1)
    log = root / "server.log"
    goodhart = Path(sys.executable).parent / "goodhart"
    cmd = [
        str(goodhart),
        "server",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    proc = subprocess.Popen(cmd, cwd=root, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"goodhart server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        _wait(up, timeout, f"the tracking server on {uri}", 0.3)
    except BaseException:
        stop_tracking_server(Server(proc, uri, log, root / "mlflow.db"))
        raise
    return Server(proc, uri, log, root / "mlflow.db")


def stop_tracking_server(s: Server) -> None:
    """SIGTERM to the `goodhart server` process (its pid): it stops its own MLflow workers."""
    if s.proc.poll() is None:
        s.proc.send_signal(signal.SIGTERM)
        try:
            s.proc.wait(30)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait(10)


def shared_tracking_server(request, tmp_path_factory) -> Server:
    """One server for the whole pytest session, whichever test module asks first (starting one
    costs ~10-30 s); stopped by pid at the end of the session."""
    cfg = request.config
    s = getattr(cfg, "_goodhart_tracking_server", None)
    if s is None or s.proc.poll() is not None:
        s = start_tracking_server(tmp_path_factory.mktemp("tracking-server"))
        cfg._goodhart_tracking_server = s
        cfg.add_cleanup(lambda: stop_tracking_server(s))
    return s
