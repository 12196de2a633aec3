"""The `slurm:` section of a sweep file: how `goodhart sweep FILE --backend slurm` submits.

Every value here ends up as one element of sbatch's argv (never a shell string), and each is
also checked against a conservative pattern, so a value like `$(touch /tmp/x)` or `; rm -rf ~`
is refused with a clear error naming the key before anything is submitted. Command-line flags
(`--partition`, `--time`, ...) override the file and go through the same validation.

    slurm:
      partition: gpu
      account: my-lab
      time: "08:00:00"
      gpus: 8                      # per array task, i.e. per sweep point
      cpus_per_task: 32
      mem: 200G
      max_concurrent: 4            # --array=...%4
      accelerate_config: multi_gpu_ddp   # configs/accelerate/multi_gpu_ddp.yaml
      extra_args: ["--constraint=a100", "--exclusive"]
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from goodhart.pipeline.config.schema import Strict

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
# SLURM time formats: minutes, minutes:seconds, hours:minutes:seconds, days-hours,
# days-hours:minutes, days-hours:minutes:seconds; or UNLIMITED / INFINITE.
TIME = r"^(\d+(:\d{1,2}){0,2}|\d+-\d{1,2}(:\d{1,2}){0,2}|UNLIMITED|INFINITE)$"
MEM = r"^\d+[KMGT]?$"
_NAME_WHAT = "a SLURM name (letters, digits, '_', '.', '-'; starting with a letter or digit)"
CHECKS = {
    "partition": (
        r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(,[A-Za-z0-9][A-Za-z0-9_.\-]*)*$",
        "a partition name or comma-separated names (letters, digits, '_', '.', '-')",
    ),
    "account": (NAME, _NAME_WHAT),
    "qos": (NAME, _NAME_WHAT),
    "gpu_type": (NAME, _NAME_WHAT),
    "job_name": (NAME, _NAME_WHAT),
    "time": (TIME, "a SLURM time: MM, HH:MM:SS, D-HH, D-HH:MM:SS or UNLIMITED"),
    "mem": (MEM, "a memory size: a number with an optional K/M/G/T suffix, e.g. 32G"),
}
# One sbatch option per list element: `--name` or `--name=value` (or a short `-C` plus value
# as two elements is not supported: write the long form). The value may hold commas, colons,
# slashes, @, %, + and = (constraints, gres, mail addresses, licenses), never whitespace, quotes,
# shell metacharacters or control characters.
EXTRA = r"^--[A-Za-z][A-Za-z0-9\-]*(=[A-Za-z0-9_.,:/@%+=\-\[\]|&!*]*)?$"
# Options the submission sets itself; giving them again would split a sweep's bookkeeping.
MIN_ABBREV = 3  # "--a": sbatch would read it as --array when no other option starts so
RESERVED = ("--array", "--output", "--error", "--open-mode", "--parsable", "--wrap", "--chdir", "--export")
# ... and those that set the tasks' environment, as --export does (launch.env sets it).
RESERVED += ("--export-file", "--get-user-env")


class SlurmConfig(Strict):
    """SLURM settings for `goodhart sweep FILE --backend slurm` (one array task per point)."""

    partition: str | None = None
    """Partition(s) to submit to (`--partition`), comma-separated; default: the cluster's default."""
    account: str | None = None
    """Account to charge (`--account`); default: your default account."""
    qos: str | None = None
    """Quality of service (`--qos`)."""
    time: str | None = None
    """Wall-clock limit per task (`--time`), e.g. "30", "04:00:00", "1-12:00:00"; default: the partition's."""
    gpus: int = Field(0, ge=0, le=64)
    """GPUs per array task, i.e. per sweep point (`--gres=gpu:N`); 0: a CPU task."""
    gpu_type: str | None = None
    """GPU type for the gres request (`--gres=gpu:TYPE:N`), e.g. a100; default: any."""
    cpus_per_task: int | None = Field(None, ge=1, le=4096)
    """CPU cores per task (`--cpus-per-task`); threads are pinned to this (split over accelerate's
    processes); default: the cluster's (usually 1)."""
    mem: str | None = None
    """Memory per node (`--mem`), e.g. 16G or 200000 (MB)."""
    max_concurrent: int | None = Field(None, ge=1)
    """At most this many tasks of the array run at once (`--array=...%K`); default: no limit."""
    job_name: str | None = None
    """Job name (`--job-name`); default `goodhart-<sweep name>`."""
    extra_args: list[str] = Field(default_factory=list)
    """Further sbatch options, one per element in long form: ["--constraint=a100", "--exclusive"]."""
    accelerate_config: str | None = None
    """An accelerate config (a path, or a name in configs/accelerate/ such as multi_gpu_ddp):
    each task then runs `accelerate launch --config_file CONFIG -m goodhart.pipeline.cli run-point ...`
    (one point on several GPUs). Default: none, one plain process per task."""
    max_requeues: int = Field(3, ge=0, le=100)
    """How often a task may requeue itself after a time-limit warning or a checkpoint-and-exit
    (exit code 75, see pipeline/train/preemption.py)."""
    allow_sqlite: bool = False
    """Let array tasks write to a SQLite tracking store. Off: SQLite is one file with one writer
    at a time, and on the network filesystems clusters share, its locking is unreliable; run
    `goodhart server` and point tracking at it instead. On: fine for a few tasks on one machine's
    local disk (writes retry on lock, see tests/test_tracking_concurrency.py)."""

    @field_validator("partition", "account", "qos", "gpu_type", "job_name", "time", "mem")
    @classmethod
    def _safe_value(cls, v: str | None, info) -> str | None:
        if v is None:
            return v
        regex, expected = CHECKS[info.field_name]
        if not isinstance(v, str) or not re.fullmatch(regex, v):
            raise ValueError(f"{v!r} is not {expected}")
        return v

    @field_validator("extra_args")
    @classmethod
    def _safe_extra(cls, v: list[str]) -> list[str]:
        for a in v:
            if not isinstance(a, str) or not re.fullmatch(EXTRA, a):
                raise ValueError(
                    f"extra sbatch option {a!r} is not of the form --name or --name=value "
                    "(letters, digits and , . : / @ % + = - _ [ ] | & ! * only; no spaces, quotes or shell syntax)"
                )
            name = a.split("=", 1)[0]
            # sbatch takes any unambiguous prefix of a long option (--arr, --outp): compare by prefix
            hit = [r for r in RESERVED if r.startswith(name) and len(name) >= MIN_ABBREV]
            if name in RESERVED or hit:
                raise ValueError(f"extra sbatch option {a!r}: {hit[0] if hit else name} is set by goodhart itself")
        return v

    @field_validator("accelerate_config")
    @classmethod
    def _plain_path(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or any(ord(c) < 32 for c in v)):
            raise ValueError("expected a path or a config name without control characters")
        return v
