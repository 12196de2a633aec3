"""The SLURM backend: a sweep is ONE job array, array task i runs point i of points.json.

`goodhart sweep FILE --backend slurm` writes the sweep directory, opens the MLflow parent run,
and submits slurm/sweep_array.sbatch with `sbatch --parsable --array=...`. What it adds to the
sweep directory (pipeline/sweeps/record.py describes the rest):

    sweep_array.sbatch   the script as submitted (a copy of slurm/sweep_array.sbatch)
    launch.env           what the tasks run: the goodhart and accelerate executables of this
                         environment, the accelerate config; shell-quoted, read by the script
    accelerate.yaml      the accelerate config tasks launch under (paths made absolute), if any
    parent.json          the MLflow parent run {uri, experiment_id, run_id}; tasks log under it
    slurm_jobs.json      every submission: job id, --array spec, index -> point id, argv, time
    logs/<job>_<i>.out   per-task stdout / stderr (<job> is the array's job id)
    logs/<job>_<i>.err

Status needs no accounting database: result.json / error.json on disk are the final states;
`squeue` gives the live ones; `sacct` (when accounting is on), else `scontrol show job` (for
MinJobAge seconds after a task ends), names why a task without a result ended. A submitted
point with no result, no error and no live task is reported failed ("lost"); when squeue
cannot answer, such a point is "unknown" (and nothing is closed or resubmitted).

Nothing here builds a shell string: sbatch, squeue, sacct and scontrol get argv lists, every
config value is validated (pipeline/config/slurm.py), and the only values that enter a script
(launch.env) are written with shlex.quote.
"""

from __future__ import annotations

import datetime as _dt
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from goodhart.pipeline.config.load import configs_dir, validate
from goodhart.pipeline.config.slurm import SlurmConfig
from goodhart.pipeline.errors import ConfigError, SlurmError
from goodhart.pipeline.io import atomic_write_json, read_json
from goodhart.pipeline.sweeps.point import ERROR, load_result

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "slurm" / "sweep_array.sbatch"
JOBS, LAUNCH_ENV, ACCEL = "slurm_jobs.json", "launch.env", "accelerate.yaml"
# Optimizers that run in one process: under a multi-process accelerate config every process
# would run the whole point.
SINGLE_PROCESS_ALGOS = frozenset({"tilt", "bon"})

PENDING_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED"}
RUNNING_STATES = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "STOPPED", "RESIZING"}


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------
def merged_settings(from_file: SlurmConfig, flags: dict[str, Any]) -> SlurmConfig:
    """The sweep file's slurm: section with command-line flags (not None) on top, re-validated."""
    data = from_file.model_dump()
    data.update({k: v for k, v in flags.items() if v is not None and v != [] and v is not False})
    if flags.get("extra_args"):
        data["extra_args"] = list(from_file.extra_args) + list(flags["extra_args"])
    return validate(data, SlurmConfig, source="slurm settings")


def array_spec(indices: list[int], max_concurrent: int | None = None) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2,5,7-8' (plus '%K' to run at most K tasks at once)."""
    if not indices:
        raise ValueError("no indices")
    idx = sorted(set(indices))
    parts, start, prev = [], idx[0], idx[0]
    for i in idx[1:] + [None]:  # type: ignore[list-item]
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    spec = ",".join(parts)
    return f"{spec}%{max_concurrent}" if max_concurrent else spec


def parse_array(spec: str) -> list[int]:
    """'0-2,5%2' -> [0, 1, 2, 5] (the inverse of array_spec; steps ':N' are honoured)."""
    out: list[int] = []
    for part in spec.split("%")[0].split(","):
        rng, _, step = part.partition(":")
        a, _, b = rng.partition("-")
        out.extend(range(int(a), int(b or a) + 1, int(step or 1)))
    return out


def _slurm_path(p: Path) -> str:
    """A path for sbatch's --output/--error, where '%' starts a pattern: double literal ones."""
    return str(p).replace("%", "%%")


def sbatch_argv(cfg: SlurmConfig, root: Path, script: Path, indices: list[int], job_name: str) -> list[str]:
    """The sbatch command line, as an argv list (never joined into a shell string to run)."""
    logs = root / "logs"
    argv = [
        "sbatch",
        "--parsable",
        f"--array={array_spec(indices, cfg.max_concurrent)}",
        f"--job-name={cfg.job_name or job_name}",
        f"--output={_slurm_path(logs)}/%A_%a.out",
        f"--error={_slurm_path(logs)}/%A_%a.err",
        "--open-mode=append",
    ]
    if cfg.partition:
        argv.append(f"--partition={cfg.partition}")
    if cfg.account:
        argv.append(f"--account={cfg.account}")
    if cfg.qos:
        argv.append(f"--qos={cfg.qos}")
    if cfg.time:
        argv.append(f"--time={cfg.time}")
    if cfg.gpus:
        argv.append(f"--gres=gpu:{cfg.gpu_type + ':' if cfg.gpu_type else ''}{cfg.gpus}")
    if cfg.cpus_per_task:
        argv.append(f"--cpus-per-task={cfg.cpus_per_task}")
    if cfg.mem:
        argv.append(f"--mem={cfg.mem}")
    argv += cfg.extra_args
    argv += [str(script), str(root)]  # script, then its one argument: the sweep directory
    return argv


# ---------------------------------------------------------------------------------------------
# What the tasks run
# ---------------------------------------------------------------------------------------------
def find_executable(name: str) -> str:
    """`name` from this Python's environment (the venv goodhart runs in), else from PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file():
        return str(here)
    found = shutil.which(name)
    if found:
        return str(Path(found).resolve())
    raise SlurmError(
        f"cannot find the `{name}` executable beside {sys.executable} or on PATH; install goodhart into this environment"
    )


def find_executable_or_name(name: str) -> str:
    """The full path of `name` as find_executable finds it; the bare name when it is not
    installed here (a task that never launches it does not need it)."""
    try:
        return find_executable(name)
    except SlurmError:
        return name


def resolve_accelerate_config(ref: str, rel_to: Path | None = None) -> Path:
    """A path (absolute, relative to the cwd or the sweep file) or a name in configs/accelerate/."""
    name = ref if ref.endswith((".yaml", ".yml", ".json")) else f"{ref}.yaml"
    cands = [Path(ref), *([rel_to / ref] if rel_to else []), configs_dir() / "accelerate" / name, REPO / ref]
    for c in cands:
        if c.is_file():
            return c.resolve()
    avail = ", ".join(sorted(p.stem for p in (configs_dir() / "accelerate").glob("*.yaml")))
    raise ConfigError(
        f"slurm.accelerate_config: '{ref}' is not a file or a config in configs/accelerate/ (available: {avail})"
    )


def prepare_accelerate(ref: str, rel_to: Path | None, algos: dict[int, str], gpus: int) -> tuple[str, int, bool]:
    """(resolved accelerate YAML text, processes per task, use_cpu), validated by accelerate's own
    loader. Relative `deepspeed_config_file` paths become absolute, so tasks need not start in the repo."""
    import tempfile

    import yaml
    from accelerate.commands.config.config_args import load_config_from_file

    src = resolve_accelerate_config(ref, rel_to)
    data = yaml.safe_load(src.read_text()) or {}
    ds = data.get("deepspeed_config") or {}
    f = ds.get("deepspeed_config_file")
    if f and not Path(f).is_absolute():
        for base in (Path.cwd(), REPO, src.parent):
            if (base / f).is_file():
                ds["deepspeed_config_file"] = str((base / f).resolve())
                break
        else:
            raise ConfigError(
                f"{src}: deepspeed_config_file '{f}' not found (relative to the cwd, the repository or {src.parent})"
            )
    text = yaml.safe_dump(data, sort_keys=False)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as tmp:
        tmp.write(text)
        tmp.flush()
        try:
            loaded = load_config_from_file(tmp.name)
        except Exception as e:  # accelerate raises ValueError/TypeError for bad keys and values
            raise ConfigError(f"slurm.accelerate_config {src}: accelerate rejects it: {e}") from None
    nproc = int(getattr(loaded, "num_processes", 1) or 1)
    single = sorted(i for i, kind in algos.items() if kind in SINGLE_PROCESS_ALGOS)
    if nproc > 1 and single:
        kinds = sorted({algos[i] for i in single})
        raise ConfigError(
            f"slurm.accelerate_config {src.name} starts {nproc} processes per task, but point(s) "
            f"{short_list(single)} use algo {'/'.join(kinds)}, which runs in one process (every process would "
            f"run the whole point): drop accelerate_config for these points"
        )
    if gpus and not loaded.use_cpu and nproc > gpus:
        raise ConfigError(f"slurm.accelerate_config {src.name} starts {nproc} processes but slurm.gpus={gpus} per task")
    return text, nproc, bool(loaded.use_cpu)


def launch_env_text(
    goodhart: str, accelerate: str, accel_cfg: Path | None, nproc: int, max_requeues: int, use_cpu: bool = False
) -> str:
    q = shlex.quote
    lines = [
        "# Written by `goodhart sweep --backend slurm`; sourced by sweep_array.sbatch. Values are",
        "# shell-quoted (shlex.quote); edit them to run the tasks with another environment.",
        f"GOODHART_BIN={q(goodhart)}",
        f"ACCELERATE_BIN={q(accelerate)}",
        f"GOODHART_ACCELERATE_CONFIG={q(str(accel_cfg)) if accel_cfg else ''}",
        f"GOODHART_NUM_PROCESSES={int(nproc)}",
        f"GOODHART_MAX_REQUEUES={int(max_requeues)}",
        # accelerate's multi-process launcher does not pass a config's use_cpu on to the workers
        f"GOODHART_ACCELERATE_USE_CPU={'true' if use_cpu else 'false'}",
    ]
    return "\n".join(lines) + "\n"


def check_tracking_uri(uri: str | None, allow_sqlite: bool) -> None:
    """Array tasks on many nodes must not share one SQLite file (see SlurmConfig.allow_sqlite)."""
    if uri and uri.startswith("sqlite:") and not allow_sqlite:
        raise ConfigError(
            f"--backend slurm would make every array task write the SQLite store {uri}; SQLite on a shared "
            "filesystem loses writes and locks under many writers. Start `goodhart server` and set "
            "MLFLOW_TRACKING_URI (or tracking.uri) to the URI it prints, or pass --allow-sqlite "
            "(slurm.allow_sqlite: true) for a few tasks on one machine's local disk"
        )


# ---------------------------------------------------------------------------------------------
# Submissions on record
# ---------------------------------------------------------------------------------------------
def load_jobs(root: Path) -> list[dict[str, Any]]:
    p = root / JOBS
    return read_json(p) if p.is_file() else []


def record_job(root: Path, entry: dict[str, Any]) -> None:
    atomic_write_json(root / JOBS, [*load_jobs(root), entry])


def submit(argv: list[str]) -> str:
    """Run sbatch (argv list, no shell); return the job id."""
    if shutil.which(argv[0]) is None:
        raise SlurmError(
            "sbatch not found: --backend slurm must run where SLURM's commands are (a login node); --dry-run shows the command"
        )
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise SlurmError("sbatch did not answer within 120 s; is slurmctld up? (`sinfo`)") from None
    if r.returncode != 0:
        raise SlurmError(f"sbatch refused the job array (exit {r.returncode}): {(r.stderr or r.stdout).strip()}")
    job = r.stdout.strip().split(";")[0]
    if not re.fullmatch(r"\d+", job):
        raise SlurmError(f"unexpected sbatch --parsable output: {r.stdout.strip()!r}")
    return job


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# Status
# ---------------------------------------------------------------------------------------------
@dataclass
class PointState:
    index: int
    id: str
    overrides: dict[str, Any]
    status: str  # done | running | pending | failed | missing (never submitted) | unknown (squeue failed)
    task: str | None = None  # "<array job id>_<index>" of the latest submission of this point
    slurm: str = ""  # the scheduler's word: RUNNING, PENDING (Priority), TIMEOUT, ...
    detail: str = ""
    logs: tuple[Path, Path] | None = None  # (.out, .err)


@dataclass
class Snapshot:
    points: list[PointState]
    jobs: list[dict[str, Any]] = field(default_factory=list)
    unknown: str = ""
    """Why squeue could not say what is live ('' when it could)."""

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.points:
            out[p.status] = out.get(p.status, 0) + 1
        return out

    @property
    def live(self) -> bool:
        """Something may still be queued or running (an unknown point may be)."""
        return any(p.status in ("pending", "running", "unknown") for p in self.points)


def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def _task_key(job: str, task: str) -> list[tuple[str, int]]:
    """(array job id, index) pairs from squeue/sacct fields; a pending range like '[2-5%2]' expands."""
    task = task.strip().strip("[]")
    if not task or task in ("N/A", "(null)"):
        return []
    try:
        return [(job, i) for i in parse_array(task)]
    except ValueError:
        return []


class QueueUnknown(SlurmError):
    """squeue could not say which tasks are live (not installed, not answering, an error): every
    unfinished point is then "unknown", never "lost", and nothing is closed or resubmitted."""


def _gone(r: subprocess.CompletedProcess) -> bool:
    """squeue's refusal of an id the controller has forgotten (the job ended long ago)."""
    return "invalid job id" in (r.stderr + r.stdout).lower()


def queue_states(job_ids: list[str]) -> dict[tuple[str, int], tuple[str, str]]:
    """Live tasks: (array job id, index) -> (state, reason), from squeue. Raises QueueUnknown when
    squeue cannot answer: "not in the queue" must never be guessed from a failed query."""
    out: dict[tuple[str, int], tuple[str, str]] = {}
    if not job_ids:
        return out
    fmt = "%F|%K|%T|%r"
    r = _run(["squeue", "-h", "-r", "-j", ",".join(job_ids), "-o", fmt])
    if r is None:
        raise QueueUnknown("squeue not found or not answering (run status on a login node)")
    if r.returncode != 0:  # some squeue versions refuse the whole list when one id is gone
        lines = []
        for j in job_ids:
            rj = _run(["squeue", "-h", "-r", "-j", j, "-o", fmt])
            if rj is None:
                raise QueueUnknown("squeue stopped answering")
            if rj.returncode == 0:
                lines += rj.stdout.splitlines()
            elif not _gone(rj):
                msg = (rj.stderr or rj.stdout).strip().splitlines()
                raise QueueUnknown(f"squeue failed (exit {rj.returncode}): {msg[0][:150] if msg else 'no message'}")
    else:
        lines = r.stdout.splitlines()
    for line in lines:
        parts = line.strip().split("|")
        if len(parts) < 4:
            continue
        job, task, state, reason = parts[:4]
        for key in _task_key(job, task):
            out[key] = (state.split()[0], reason)
    return out


def final_states(job_ids: list[str]) -> dict[tuple[str, int], tuple[str, str]]:
    """Ended tasks: (array job id, index) -> (state, exit code), from sacct, else scontrol."""
    out: dict[tuple[str, int], tuple[str, str]] = {}
    if not job_ids:
        return out
    r = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(job_ids), "-o", "JobID,State,ExitCode"])
    if r is not None and r.returncode == 0:
        for line in r.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) < 3 or "_" not in parts[0]:
                continue
            job, task = parts[0].split("_", 1)
            for key in _task_key(job, task):
                out[key] = (parts[1].split()[0], parts[2])
        return out
    # No accounting database: scontrol remembers ended jobs for MinJobAge seconds (300 by default).
    for j in job_ids:
        r = _run(["scontrol", "show", "job", "-o", j])
        if r is None or r.returncode != 0:
            continue
        for line in r.stdout.splitlines():
            f = dict(re.findall(r"(?:^|\s)(ArrayJobId|ArrayTaskId|JobState|ExitCode)=(\S*)", line))
            if "ArrayJobId" in f and "ArrayTaskId" in f:
                for key in _task_key(f["ArrayJobId"], f["ArrayTaskId"]):
                    out.setdefault(key, (f.get("JobState", "?"), f.get("ExitCode", "?")))
    return out


def log_paths(root: Path, job: str, index: int) -> tuple[Path, Path]:
    base = root / "logs" / f"{job}_{index}"
    return base.with_suffix(".out"), base.with_suffix(".err")


def snapshot(root: Path) -> Snapshot:
    """Per point: done / running / pending / failed / missing, from the queue, then the disk."""
    from goodhart.pipeline.sweeps.record import read_points

    entries = read_points(root)
    jobs = load_jobs(root)
    latest: dict[int, str] = {}  # index -> array job id of the latest submission that ran this point there
    for j in jobs:
        for i, pid in j.get("points", {}).items():
            if int(i) < len(entries) and entries[int(i)]["id"] == pid:
                latest[int(i)] = str(j["job_id"])
    ids = sorted({str(j["job_id"]) for j in jobs}, key=int)
    unknown = ""
    try:
        live = queue_states(ids) if ids else {}  # the queue first: a task that ends now is then on disk
    except QueueUnknown as e:
        live, unknown = {}, str(e)
    points: list[PointState] = []
    need_final: list[PointState] = []
    for e in entries:
        i, pid = e["index"], e["id"]
        d = root / "points" / pid
        ps = PointState(i, pid, e["overrides"], "missing")
        job = latest.get(i)
        if job is not None:
            ps.task, ps.logs = f"{job}_{i}", log_paths(root, job, i)
            if not any(f.is_file() for f in ps.logs):  # never started (cancelled while pending): no log to name
                ps.logs = None
        q = live.get((job, i)) if job else None
        if load_result(d) is not None:  # a result that parses, with finite numbers
            ps.status = "done"
        elif q is not None:
            state, reason = q
            ps.status = "running" if state in RUNNING_STATES else "pending"
            ps.slurm = state if reason in ("None", "", "(null)") else f"{state} ({reason})"
        elif (d / ERROR).is_file():
            ps.status = "failed"
            err = read_json(d / ERROR)
            ps.detail = str(err.get("error", ""))
        elif job is not None and unknown:
            ps.status = "unknown"  # may well be queued or running: never call it lost on a failed query
            ps.detail = f"queue state unknown: {unknown}"
        elif job is not None:
            ps.status = "failed"
            need_final.append(ps)
        points.append(ps)
    if need_final:
        ended = final_states(sorted({p.task.split("_")[0] for p in need_final if p.task}, key=int))
        for ps in need_final:
            job = ps.task.split("_")[0] if ps.task else ""
            state, code = ended.get((job, ps.index), ("", ""))
            started = ps.logs is not None
            if state.startswith("CANCELLED") and not started:
                ps.slurm = state
                ps.detail = "cancelled before it started (no log)"
            elif state:
                ps.slurm = state
                ps.detail = (
                    f"task ended {state} (exit {code}) without a result"
                    if state != "COMPLETED"
                    else "task completed but wrote no result"
                )
            elif started:
                ps.detail = "lost: no result, no error and no live task (see its log)"
            else:
                ps.detail = "never started: no result, no error, no log and no live task (cancelled while pending?)"
    return Snapshot(points, jobs, unknown)


def status_rows(snap: Snapshot) -> list[list[Any]]:
    from goodhart.pipeline.sweeps.labels import distinguishing_overrides

    rows = []
    for p, ov in zip(snap.points, distinguishing_overrides([p.overrides for p in snap.points])):
        rows.append([p.index, p.id, p.status, p.task or "-", p.slurm or "-", ov, p.detail[:60]])  # overrides in full
    return rows


def short_list(xs: list[int], n: int = 8) -> str:
    return ", ".join(map(str, xs[:n])) + (f" (+{len(xs) - n} more)" if len(xs) > n else "")
