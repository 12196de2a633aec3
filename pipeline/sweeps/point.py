"""Run one sweep point end to end: config -> optimizer -> result row -> disk and MLflow.

A point directory holds config.yaml, then (atomically, last) result.json: the done marker.
A re-run of a finished point returns its result without doing anything; a failed point
leaves error.json (message and traceback) and is retried by the next run.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from goodhart.eval import metrics as M
from goodhart.pipeline.base.context import PointContext
from goodhart.pipeline.config.load import to_yaml
from goodhart.pipeline.config.schema import AlarmConfig, DistributionalReward, HFReward, RunConfig, SyntheticReward
from goodhart.pipeline.io import atomic_savez, atomic_write_json, atomic_write_text, npz_problem, read_json, short_hash
from goodhart.pipeline.sweeps.child_run import DeferredTarget, TrackingTarget, open_run
from goodhart.pipeline.sweeps.curves import curve_identity, mitigation_columns
from goodhart.pipeline.sweeps.labels import point_tags, run_name
from goodhart.pipeline.sweeps.tables import point_flags
from goodhart.pipeline.sweeps.tracking import flatten, table_artifact, table_tag
from goodhart.pipeline.train.preemption import EXIT_REQUEUE
from goodhart.rewards.base import RewardError

RESULT, ERROR, CONFIG, EXAMPLES = "result.json", "error.json", "config.yaml", "examples.jsonl"
PER_PROMPT_FILE = "per_prompt.npz"  # per-prompt estimates: reports compare points paired on prompts
TRAIN_LOG = "train_metrics.jsonl"  # per-step training metrics, one JSON line per logged step
RUNNING = "running.json"  # {pid, host, started}: written when a local run starts, removed when it ends
PREEMPTED = "preempted.json"  # stopped on a preemption signal after checkpointing: pending, not failed
INTERRUPTED = "interrupted.json"  # stopped by Ctrl-C / SIGTERM: pending, not failed
# The numbers a result must hold, finite, to count as done (a NaN result is no result).
REQUIRED_FINITE = (M.PROXY, M.UTILITY, M.GAIN_PROXY, M.GAIN_UTILITY, M.KL, "x")
REQUIRED_TEXT = ("point_id", "algo", "error_law", "x_name")  # what every reader of a row groups by


# Config keys added after results existed, with the value that reproduces those results: at that
# value a key is left out of the id (a section left empty goes too), so a finished point keeps its
# id (and its directory, results and checkpoints) when the key is added; any other value is a new
# point. The `alarm:` keys are neutral at their defaults, which are alarm rule 4's
# (tests/test_alarm.py pins them to the rule's version): the rule a row was computed under is kept
# in it (alarm/rule), and alarm_stale compares it with the config's. A section is a dotted path
# (`reward.ensemble`); a key whose section is absent or not a mapping (no ensemble) is left alone.
ADDED_KEYS: tuple[tuple[str, str, object], ...] = (
    ("algo", "alarm_samples", 0),
    ("eval", "holdout", None),
    *(("alarm", key, f.default) for key, f in AlarmConfig.model_fields.items()),
    ("sampling", "engine", "hf"),
    ("sampling", "vllm_gpu_memory", 0.5),
    ("sampling", "grown_from", None),
    ("algo.kl", "per_prompt", False),  # the tilt's per-prompt KL budget
    ("algo", "kl", {"target": None}),  # best-of-n at a matched KL
    ("eval", "alarm", True),  # the alarm switched off
    ("reward.ensemble", "rho", 0.0),  # a shared error component of ensemble members
)


def point_id(cfg: RunConfig) -> str:
    """A hash of everything that changes the result (not the label, tracking or output dir, nor
    eval.resolve: which points a sweep adds, not what a point computes)."""
    d = cfg.model_dump(mode="json", exclude={"name": True, "tracking": True, "output_dir": True, "eval": {"resolve"}})
    return short_hash(drop_neutral(d), 10)


def drop_neutral(d: dict[str, Any], keys: tuple[tuple[str, str, object], ...] = ADDED_KEYS) -> dict[str, Any]:
    """d (a config's dump) without the added keys at their neutral values, and without a section
    that leaves empty: what point_id hashes. Changes d in place and returns it."""
    for section, key, neutral in keys:
        *parents, last = section.split(".")
        holder: Any = d
        for part in parents:
            holder = holder.get(part) if isinstance(holder, dict) else None
        node = holder.get(last) if isinstance(holder, dict) else None
        if isinstance(node, dict) and key in node and node[key] == neutral:
            del node[key]
            if not node:
                del holder[last]
    return d


def error_label(cfg: RunConfig) -> str:
    """The tail setting of a point, for grouping tables and verdicts."""
    if isinstance(cfg.reward, SyntheticReward):
        mode = "" if cfg.reward.error.mode == "independent" else f" [{cfg.reward.error.mode}]"
        return f"{cfg.reward.error.law.label} x{cfg.reward.error.law.scale:g}{mode}"
    if isinstance(cfg.reward, DistributionalReward):
        return f"{cfg.reward.error.label} x{cfg.reward.error.scale:g}"
    if isinstance(cfg.reward, HFReward):  # one group per reward model (e.g. per data size)
        return f"hf:{Path(cfg.reward.path).name}"
    return cfg.reward.type


def algo_x(cfg: RunConfig) -> tuple[str, float]:
    """(name, value) of the knob that places a point on the KL axis."""
    a = cfg.algo
    kl = getattr(a, "kl", None)
    if kl is not None and getattr(kl, "target", None):  # adaptive KL: the target places the point
        return "kl_target", float(kl.target)
    if hasattr(a, "n"):  # bon, bon-ft: how many samples the best is picked from
        return "n", float(a.n)
    return M.X_KL_COEF, float(a.kl.coef)  # tilt, ppo, rloo, grpo: the KL coefficient (kl.coef)


def _num(v: Any) -> Any:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


COMPLETION_COLUMNS = ("prompt", "completion", "proxy", "utility", "error")
"""The first columns of a point's completions table (completions.json; more may follow)."""


def completion_rows(examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A point's examples with their error (proxy - utility) where they do not carry one."""
    return [
        {**e, "error": e["proxy"] - e["utility"]} if "error" not in e and {"proxy", "utility"} <= e.keys() else e
        for e in examples
    ]


def row_problem(row: Any) -> str | None:
    """Why a result row is not a valid result (None when it is)."""
    if not isinstance(row, dict):
        return f"expected a mapping, got {type(row).__name__}"
    for k in REQUIRED_TEXT:
        if not isinstance(row.get(k), str):
            return f"'{k}' is missing (a result of another version?)"
    for k in REQUIRED_FINITE:
        v = row.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"'{k}' is missing or not a number ({v!r})"
        if not math.isfinite(v):
            return f"'{k}' is {v}"
    return None


def result_problem(point_dir: Path) -> str | None:
    """Why <point_dir>/result.json does not mark the point done (None when it does, or when there
    is no result.json at all): unreadable, truncated, holding non-finite numbers, or naming a
    file (per_prompt.npz, the sweep's pool scores) that is missing or torn."""
    p = point_dir / RESULT
    if not p.is_file():
        return None
    try:
        row = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        return f"{RESULT} is unreadable ({type(e).__name__}: {str(e)[:80]})"
    bad = row_problem(row)
    if bad:
        return f"{RESULT} is not a valid result: {bad}"
    for f in named_files(point_dir, row):
        why = npz_problem(f)
        if why:
            return f"{RESULT} names {f.name}, which {why.split(' ', 1)[1]}"
    return None


def named_files(point_dir: Path, row: dict[str, Any]) -> list[Path]:
    """The files a result row names, which must be readable for the point to be done."""
    out = []
    if isinstance(row.get("per_prompt_file"), str):
        out.append(point_dir / row["per_prompt_file"])
    for key in ("pool_file", "holdout_file"):
        if isinstance(row.get(key), str):
            out.append(_sweep_root(point_dir) / row[key])
    return out


def _sweep_root(point_dir: Path) -> Path:
    return point_dir.parent.parent if point_dir.parent.name == "points" else point_dir


def load_result(point_dir: Path) -> dict[str, Any] | None:
    """The point's result row, if it is done: result.json parses, its numbers are finite and the
    files it names read."""
    p = point_dir / RESULT
    if not p.is_file() or result_problem(point_dir) is not None:
        return None
    return read_json(p)


def scoring_identity(cfg: RunConfig, cheap: bool = False) -> str:
    """What scores the point: the checkpoints' content, the callables' source, the plug-ins'
    release (base/identity.py:rewards_identity, the score cache's own key). Kept in result.json:
    a point whose reward changed since it ran is not done. `cheap`: without importing user code
    or reading a large checkpoint, else identity.Unchecked (what `goodhart status` can afford)."""
    from goodhart.pipeline.base.identity import reward_identity, rewards_identity

    ids = rewards_identity(cfg, cheap)
    h = cfg.eval.holdout
    if h is not None and h.source == "rewards":  # held-out reward models too (none: the identity as before)
        ids = [*ids, [reward_identity(r, cheap) for r in h.rewards]]
    return short_hash(ids, 16)


IDENTITY = "reward_identity"
BUILTIN = short_hash([None, None], 16)  # built-in rewards only: what a result from before the check means


def stale_reason(cfg: RunConfig, point_dir: Path, row: dict[str, Any] | None = None, cheap: bool = False) -> str | None:
    """Why a finished point's result no longer answers its config (None when it does). `cheap`:
    see scoring_identity (raises identity.Unchecked when it cannot tell cheaply)."""
    row = row if row is not None else load_result(point_dir)
    if row is None:
        return None
    old = alarm_stale(row, cfg.alarm.rule())
    if old is not None:
        return old
    have = row.get(IDENTITY) or BUILTIN
    want = scoring_identity(cfg, cheap)
    if have == want:
        return None
    return f"its reward changed since it ran (a new checkpoint, edited callable or plug-in release: identity {have} -> {want})"


def alarm_stale(row: dict[str, Any], rule: Any = None) -> str | None:
    """Why a finished row's alarm is not the current one (None when it is, or it has none): its
    level, score and evidence were computed under another alarm rule version (rows from before the
    version was kept: rule 2) or, given the config's ``rule`` (an eval.alarm.AlarmRule), under
    other rule keys (``alarm/rule``; rows from before it was kept: the version's defaults). A stale
    label shown as fresh is worse than a re-run."""
    from goodhart.eval.alarm import VERSION, AlarmRule

    level = row.get(M.ALARM_LEVEL)
    if level is None or level != level:  # no alarm in this row (a NaN in a table's column)
        return None
    try:
        have = int(float(row.get(M.ALARM_VERSION, 2)))  # NaN (a table's empty cell): rule 2
    except (TypeError, ValueError):
        have = 2
    if have != VERSION:
        return f"its alarm was computed under alarm rule {have}, the code's is {VERSION} (docs/alarm.md#rule-versions)"
    if rule is None:
        return None
    keys = row.get(M.ALARM_RULE)
    keys = keys if isinstance(keys, str) and keys else AlarmRule().key()
    if keys == rule.key():
        return None
    return f"its alarm was computed under the alarm keys {keys!r}, the config's are {rule.key()!r}"


SAVED_DRAW_SAMPLES = 2**18
"""A distributional pool is saved only up to this many samples (P x N), and only unmitigated."""


def _save_pool_scores(point_dir: Path, pool, cfg: RunConfig | None = None) -> str | None:
    """Base-policy scores, once per pool, beside the sweep (for tail diagnostics in reports).
    Returns the path relative to the sweep directory. A distributional pool is a function of its
    config (drawn again in milliseconds): only an unmitigated one of at most SAVED_DRAW_SAMPLES is
    saved (None otherwise), so an arena of seeds x pool sizes x mitigations does not write its
    thousands of draws (gigabytes) to disk; every number a report reads is in the point's row."""
    if cfg is not None and isinstance(cfg.reward, DistributionalReward):
        r = cfg.reward
        if r.ensemble is not None or r.transform is not None or pool.proxy.size > SAVED_DRAW_SAMPLES:
            return None
    root = _sweep_root(point_dir)
    rel = f"pools/{short_hash(pool.key)}.npz"
    if npz_problem(root / rel):  # missing, or torn (a point that named it is being rerun)
        atomic_savez(root / rel, proxy=pool.proxy, utility=pool.utility, error=pool.error)
    return rel


def holdout_base(point_dir: Path, pool, ho, ci: float) -> dict[str, Any]:
    """The held-out proxy's figures of the base pool (what it is, best-of-2's held-out gain and
    share: the estimate's near-base floor and share0) and its scores saved once beside the sweep
    (holdout_file: the report's gold-free tail test of proxy - holdout)."""
    from goodhart.eval.holdout import best_of_2
    from goodhart.pipeline.base.pool import pool_memo

    root = _sweep_root(point_dir)
    rel = f"pools/{short_hash(pool.key)}-holdout-{ho.key}.npz"
    if npz_problem(root / rel):
        atomic_savez(root / rel, holdout=ho.values)
    g, lo, hi, share = pool_memo(best_of_2, pool.proxy, ho.values, ci=ci)
    return {
        M.HOLDOUT_K: ho.k,
        M.HOLDOUT_SOURCE: ho.source,
        M.HOLDOUT_BASE_GAIN2: g,
        M.lo(M.HOLDOUT_BASE_GAIN2): lo,
        M.hi(M.HOLDOUT_BASE_GAIN2): hi,
        M.HOLDOUT_BASE_SHARE2: share,
        "holdout_file": rel,
    }


def _mark_interrupted(point_dir: Path, pid: str, e: BaseException, run_id: str | None) -> None:
    """Stopped by Ctrl-C / SIGTERM: pending (rerun next time), not failed."""
    (point_dir / ERROR).unlink(missing_ok=True)
    atomic_write_json(
        point_dir / INTERRUPTED,
        {"point_id": pid, "signal": str(e) or "SIGINT", "at": time.time(), "mlflow_run_id": run_id},
    )


def run_point(
    cfg: RunConfig, point_dir: Path, target: TrackingTarget | DeferredTarget | None = None, progress: bool = True
) -> dict[str, Any]:
    """Run (or skip, if finished) one point; returns its result row. Raises on failure after
    recording it in error.json and, if tracking, a FAILED child run. A DeferredTarget (a
    sweep's worker process) records the child run for the sweep's process to log
    (sweeps/child_run.py): no MLflow here."""
    done = load_result(point_dir)
    stale = stale_reason(cfg, point_dir, done) if done is not None else None
    if done is not None and stale is None:
        return done
    problem = stale or result_problem(point_dir)
    if problem is not None and int(os.environ.get("RANK", "0")) == 0:
        # Not done after all: keep the bad files aside (for a look) and run the point again.
        print(f"goodhart: notice: point {point_dir.name}: {problem}; running it again", file=sys.stderr)
        set_aside(point_dir, ".stale" if stale else ".invalid")
    # Under `accelerate launch` every rank runs this; only rank 0 records anything.
    main_rank = int(os.environ.get("RANK", "0")) == 0
    if not main_rank:
        target = None
    point_dir.mkdir(parents=True, exist_ok=True)
    if main_rank:
        atomic_write_text(point_dir / CONFIG, to_yaml(cfg))
        mark_running(point_dir)
    try:
        return _run_point(cfg, point_dir, target, progress, main_rank)
    finally:
        if main_rank:
            (point_dir / RUNNING).unlink(missing_ok=True)


def set_aside(point_dir: Path, suffix: str) -> None:
    """Move result.json, and the point's own files it names that are torn, to NAME<suffix>."""
    try:
        row = json.loads((point_dir / RESULT).read_text())
    except (OSError, ValueError):
        row = None
    if isinstance(row, dict):
        for f in named_files(point_dir, row):
            if f.parent == point_dir and f.is_file() and npz_problem(f):
                os.replace(f, f.with_name(f.name + suffix))
    if (point_dir / RESULT).is_file():
        os.replace(point_dir / RESULT, point_dir / (RESULT + suffix))


def mark_running(point_dir: Path) -> None:
    """running.json: this process runs the point (status shows it running while the pid lives)."""
    import socket

    atomic_write_json(point_dir / RUNNING, {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})


def running_state(point_dir: Path) -> tuple[str, str] | None:
    """("running" | "stale", detail) from running.json, or None when there is none. A pid on
    this host that no longer lives is stale (killed hard: the point is pending again); on
    another host the pid cannot be checked and the point is taken as running."""
    import socket

    f = point_dir / RUNNING
    if not f.is_file():
        return None
    try:
        info = read_json(f)
        pid, host = int(info["pid"]), str(info.get("host", ""))
    except Exception:
        return "stale", "unreadable running.json"
    if host and host != socket.gethostname():
        return "running", f"pid {pid} on {host}"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "stale", f"pid {pid} is gone (killed?): pending"
    except PermissionError:
        pass  # alive, another user's
    return "running", f"pid {pid}"


def _run_point(
    cfg: RunConfig, point_dir: Path, target: TrackingTarget | DeferredTarget | None, progress: bool, main_rank: bool
) -> dict[str, Any]:
    pid = point_id(cfg)
    x_name, x = algo_x(cfg)
    who = point_tags(cfg.algo.kind, x_name, x, error_label(cfg))
    run = None
    if target is not None:
        # A rerun continues the point's own child run (run.json), so a resumed point keeps one history.
        try:
            name = run_name(cfg.algo.kind, x_name, x, error_label(cfg))
            run = open_run(target, point_dir, name, {"goodhart.point_id": pid, **who})
        except KeyboardInterrupt as e:  # (open_child_run closed the run it had just opened)
            _mark_interrupted(point_dir, pid, e, None)
            raise
    run_id = run.run_id if run is not None else None

    def log_step(metrics: dict[str, float], step: int) -> None:
        """Per-step training metrics: a line of train_metrics.jsonl (for the report's training
        curves; a resumed run appends, the last line of a step wins) and, under train/, MLflow
        (the final row goes under eval/)."""
        if main_rank:
            with open(point_dir / TRAIN_LOG, "a") as f:
                f.write(json.dumps({"step": int(step), **{k: _num(v) for k, v in metrics.items()}}) + "\n")
        if run is not None:
            run.step({M.train_name(k): v for k, v in metrics.items()}, step)

    # (here, not at the top: `status` and `report` import this module and need none of the math)
    from goodhart.pipeline.base.measure import PER_PROMPT, base_gain2, base_share2, error_utility_corr
    from goodhart.pipeline.base.pool import pool_memo

    t0 = time.time()
    ctx = PointContext(cfg, point_dir, progress, log_step)
    try:
        if run is not None:  # (sent with the run's first batch)
            params = flatten(cfg.model_dump(mode="json", exclude={"tracking"}))
            params.update({"x_name": x_name, "x": f"{x:g}", "group": who["goodhart.group"]})
            run.params(params)
        from goodhart.pipeline import optimizers

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = optimizers.get(cfg.algo.kind)(ctx)
        pool = ctx._pool
        x_name, x = algo_x(cfg)
        per_prompt = out.row.pop(PER_PROMPT, None)
        row = {
            "point_id": pid,
            "status": "done",
            "name": cfg.name,
            "algo": cfg.algo.kind,
            "error_law": error_label(cfg),
            "x_name": x_name,
            "x": x,
            "seed": cfg.seed,
            **curve_identity(cfg),
            **mitigation_columns(cfg, pool),
            **out.row,
            "seconds": round(time.time() - t0, 2),
            "warnings": " | ".join(str(w.message) for w in caught),
            "mlflow_run_id": run_id,
            IDENTITY: scoring_identity(cfg),
        }
        if not main_rank:
            return row
        bad = row_problem(row)
        if bad:  # never write a result that is not one: it would count as done
            raise RewardError(f"point {pid} gave a non-finite result ({bad}); check the reward's scale")
        if pool is not None:
            if getattr(pool, "clipped_fraction", None) is not None:
                row[M.REWARD_CLIPPED] = pool.clipped_fraction
            row[M.ERROR_UTILITY_CORR] = pool_memo(error_utility_corr, pool.error, pool.utility)  # per pool
            row["pool_file"] = _save_pool_scores(point_dir, pool, cfg)
            row[M.BASE_SHARE2] = pool_memo(base_share2, pool.proxy, pool.utility)  # once per pool and process
            # best-of-2's utility gain (the verdict rule's near-base floor), read by reports without the pool file
            g2 = pool_memo(base_gain2, pool.proxy, pool.utility)
            row[M.BASE_GAIN2], row[M.lo(M.BASE_GAIN2)], row[M.hi(M.BASE_GAIN2)] = (float(v) for v in g2)
            if pool.calibration is not None:
                atomic_write_json(point_dir / "calibration.json", pool.calibration)
            if ctx._holdout is not None:  # the held-out proxy (eval.holdout): the estimate's base figures
                row.update(holdout_base(point_dir, pool, ctx._holdout, cfg.eval.ci))
        if per_prompt is not None:
            atomic_savez(point_dir / PER_PROMPT_FILE, **per_prompt)
            row["per_prompt_file"] = PER_PROMPT_FILE
        if out.examples:
            atomic_write_text(point_dir / EXAMPLES, "".join(json.dumps(e) + "\n" for e in out.examples))
        if run is not None:
            tags = {"goodhart.flags": " ".join(point_flags(row))} if point_flags(row) else {}
            files: dict[str, Any] = {
                n: point_dir / n for n in ("calibration.json", CONFIG) if (point_dir / n).is_file()
            }
            files.update({Path(a).name: Path(a) for a in out.artifacts})
            if out.examples:  # sample completions: a table MLflow renders
                files["completions.json"] = table_artifact(completion_rows(out.examples), COMPLETION_COLUMNS)
                tags.update(table_tag("completions.json"))
            run.done(row, tags, files)
        atomic_write_json(point_dir / RESULT, row)  # last: marks the point done
        for stale in (ERROR, PREEMPTED, INTERRUPTED):
            (point_dir / stale).unlink(missing_ok=True)
        return row
    except BaseException as e:
        preempted = isinstance(e, SystemExit) and e.code == EXIT_REQUEUE
        interrupted = isinstance(e, KeyboardInterrupt)
        if run is not None:
            run.stopped("KILLED" if preempted or interrupted else "FAILED", interrupted)
        if not main_rank:
            raise
        if preempted:  # checkpointed; not a failure: the requeued task resumes
            atomic_write_json(point_dir / PREEMPTED, {"point_id": pid, "reason": str(e), "mlflow_run_id": run_id})
            raise
        if interrupted:  # stopped, not broken: the next run does it again (continuing its child run)
            _mark_interrupted(point_dir, pid, e, run_id)
            raise
        atomic_write_json(
            point_dir / ERROR,
            {
                "point_id": pid,
                "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(),
                "mlflow_run_id": run_id,
            },
        )
        raise
