"""The gold-free Goodhart alarm inside a TRL run (GRPOTrainer, RLOOTrainer, or any Trainer whose
reward functions it can wrap): one callback, one wrapper of ``reward_funcs``.

    from goodhart.integrations.trl import GoodhartCallback

    alarm = GoodhartCallback(every=5, stop_on_alarm=True)
    trainer = GRPOTrainer(model=..., reward_funcs=alarm.wrap([my_reward]), args=..., train_dataset=...,
                          callbacks=[alarm])
    trainer.train()
    alarm.stopped_at, alarm.last_quiet_checkpoint

What it does (docs/integrations.md has the long form):

- ``wrap`` returns the reward functions unchanged in what they return (same names, so TRL logs
  them as before) and records every sample's reward; the proxy of a sample is the weighted sum
  TRL optimizes (``reward_weights``). ``gold=`` (a function of the same shape) is called on the
  same samples and recorded, never given to TRL: it does not train anything.
- Base statistics (goodhart.eval.alarm.BaseStats) come from ``base=`` (a file or an array of the
  base policy's proxy rewards) or are sampled at the start of training from the model itself
  (the base, before any update): ``base_samples`` completions of ``base_prompts`` prompts of the
  train dataset, scored by the wrapped functions, saved to <output_dir>/goodhart_base.npz (a
  resumed run reads them back instead of sampling its trained model).
- Every ``every`` steps (at the first log at or after each multiple) the alarm reads the samples
  recorded since the previous log -- the policy's newest batch, every process's -- the sequence KL
  of that log (TRL's per-token ``kl`` x ``completions/mean_length``; absent at beta = 0, then the
  alarm's Donsker-Varadhan evidence is skipped) and the base statistics, and adds ``goodhart/...``
  metrics (eval/metrics.py) to the trainer's own logs, so every logger of ``report_to`` (MLflow,
  TensorBoard, W&B, ...) gets them. Schedule, window and cross-process agreement are the
  pipeline's own online alarm's (goodhart.pipeline.train.online_alarm, which the pipeline's
  trainers use too).
- ``stop_on_alarm``: a check at level ``alarm`` stops training (every process acts on the highest
  level any read). ``last_quiet_checkpoint`` is the last checkpoint not flagged: the newest one
  saved while the latest check read ``quiet`` -- not the best checkpoint (the alarm does not locate
  the utility's turn). <output_dir>/goodhart_alarm.json records every check.
- ``samples_file``: every log's window under its step, with its KL: ``goodhart analyze FILE
  --pairing global`` reads each checked step's alarm as it was read live, at any ``every``.
- ``holdout=`` (in ``wrap``): held-out reward functions -- reward models the run does not optimize,
  whose errors are independent of the optimized reward's (trained on other data; docs/holdout.md).
  Called on the same samples (and on the base's), recorded, never given to TRL; each check logs
  their mean and its gain over the base's (``goodhart/gain/holdout``): the utility gain estimated
  without gold. ``best_holdout_checkpoint`` is the checkpoint whose latest check had the largest
  lower bound of that gain (the estimate's peak, as the verdict rule picks one), beside
  ``last_quiet_checkpoint``.

The metrics reach the loggers because the callback runs first on each log: the wrapped reward
functions find the trainer (TRL passes them its ``log_metric``) and the callback moves itself to
the front of the trainer's callbacks; ``attach(trainer)`` does the same by hand.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback

from goodhart.eval import metrics as M
from goodhart.eval.alarm import Alarm, AlarmRule, BaseStats
from goodhart.eval.holdout import combine
from goodhart.pipeline.io import atomic_savez
from goodhart.pipeline.train.online_alarm import OnlineAlarm, gather_objects, is_training_log, trl_sequence_kl

BASE_FILE = "goodhart_base.npz"
SUMMARY_FILE = "goodhart_alarm.json"
RewardFunc = Callable[..., Sequence[float | None]]


def load_base(source: str | Path | np.ndarray | BaseStats, rule: AlarmRule | None = None) -> BaseStats:
    """Base statistics from a BaseStats, an array of base proxy rewards ((P, N) or flat), or a
    file: .npy, .npz (array `proxy`, else the first), .csv / .parquet / .jsonl (column `proxy`;
    in the `goodhart analyze` schema only the rows whose point is `base`). With the null's
    replicates (``rule.n_null``), so the base's tail-shape test joins the gain test, as in the
    pipeline's online monitor (pipeline/train/alarm_monitor.py)."""
    if hasattr(source, "sigma") and hasattr(source, "means"):  # BaseStats (the public class or eval's)
        return source  # type: ignore[return-value]
    if isinstance(source, np.ndarray):
        x = np.asarray(source, dtype=np.float64)
    else:
        p = Path(source)
        if not p.is_file():
            raise FileNotFoundError(f"no such base file: {p}")
        if p.suffix == ".npy":
            x = np.load(p)
        elif p.suffix == ".npz":
            z = np.load(p)
            x = z["proxy"] if "proxy" in z.files else z[z.files[0]]
        else:
            import pandas as pd

            df = _read_table(pd, p)
            if "proxy" not in df:
                raise ValueError(f"{p}: no column 'proxy' (the base policy's proxy rewards)")
            if "point" in df:
                df = df[df["point"].astype(str) == "base"]
            x = df["proxy"].to_numpy(np.float64)
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)] if x.ndim == 1 else x
    if x.size < 2:
        raise ValueError("the base statistics need at least 2 base proxy rewards")
    return BaseStats.for_rule(np.atleast_2d(x), rule or AlarmRule(), per_prompt=False)


def load_base_holdout(source: str | Path | np.ndarray | None) -> float | None:
    """The base policy's mean held-out proxy: from an array, or a base file's `holdout` (.npz array,
    or the column of a .csv / .parquet / .jsonl, base rows only); None when there is none."""
    if source is None or hasattr(source, "sigma"):
        return None
    if isinstance(source, np.ndarray):
        x = source
    else:
        p = Path(source)
        if p.suffix == ".npz":
            z = np.load(p)
            if "holdout" not in z.files:
                return None
            x = z["holdout"]
        elif p.suffix in (".csv", ".parquet", ".jsonl"):
            import pandas as pd

            df = _read_table(pd, p)
            if "holdout" not in df:
                return None
            x = (df[df["point"].astype(str) == "base"] if "point" in df else df)["holdout"].to_numpy(np.float64)
        else:
            return None
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else None


class GoodhartCallback(TrainerCallback):
    """Records per-sample proxy rewards, computes the gold-free alarm every ``every`` steps, logs
    ``goodhart/...`` metrics through the trainer's loggers, and (``stop_on_alarm``) stops at an alarm.

    Args:
        base: the base policy's proxy rewards (a file, an array, or BaseStats); None: sample them
            from the model at the start of training.
        every: steps between checks (a check happens at the first log at or after each).
        stop_on_alarm: stop training at a check of level ``alarm``.
        base_samples: completions per prompt when sampling the base.
        base_prompts: prompts to sample the base on (None: the first 8 distinct prompts of the
            train dataset).
        rule: the alarm's thresholds (goodhart.AlarmRule); other keywords go to the alarm.
        samples_file: write every recorded sample (and the sampled base) to this CSV in the
            `goodhart analyze` schema: point = the step of the log that took it (every process's
            samples), prompt, proxy, utility (the gold, if any), holdout (the held-out proxy, if
            any), kl (that log's sequence KL), so the analysis reads each checked step's alarm as
            the callback did; relative paths are under the trainer's output_dir.
        base_holdout: the base policy's held-out proxy scores (an array) when ``base`` is given
            and has none of its own (a base file's `holdout` array or column is read by itself);
            needed with ``wrap(..., holdout=...)`` unless the base is sampled.

    After training: ``stopped_at``, ``last_quiet_step`` (the last check that read ``quiet``),
    ``last_quiet_checkpoint`` (the last checkpoint not flagged: the newest saved while the latest
    check read ``quiet``; not the best checkpoint -- the alarm flags a risk, it does not locate the
    utility's turn), with held-out functions ``best_holdout_checkpoint`` (the checkpoint whose
    latest check had the largest lower bound of held-out gain: the estimate's peak; it assumes the
    held-out errors independent of the optimized reward's), ``history`` (one record per check) and
    ``summary()`` (also written to <output_dir>/goodhart_alarm.json).

    ```pycon
    >>> import numpy as np
    >>> from goodhart.integrations.trl import GoodhartCallback
    >>> cb = GoodhartCallback(base=np.random.default_rng(0).normal(size=512), every=5, stop_on_alarm=True)
    >>> def my_reward(prompts, completions, **kwargs):
    ...     return [float(len(c)) for c in completions]
    >>> (f,) = cb.wrap([my_reward])
    >>> f.__name__, f(prompts=["a"], completions=["xyz"])  # what TRL sees: the same function
    ('my_reward', [3.0])

    ```

    Then ``GRPOTrainer(..., reward_funcs=[f], callbacks=[cb]).train()`` (examples/grpo_with_alarm.py).
    """

    def __init__(
        self,
        base: str | Path | np.ndarray | BaseStats | None = None,
        *,
        every: int = 5,
        stop_on_alarm: bool = False,
        base_samples: int = 16,
        base_prompts: Sequence[str] | int = 8,
        rule: AlarmRule | None = None,
        samples_file: str | Path | None = None,
        base_holdout: np.ndarray | None = None,
        **alarm_options: Any,
    ):
        if every < 1:
            raise ValueError(f"every must be >= 1 step, got {every}")
        self.rule = rule or AlarmRule()
        self.base: BaseStats | None = load_base(base, self.rule) if base is not None else None
        self.every, self.stop_on_alarm = int(every), bool(stop_on_alarm)
        # schedule, window, cross-process agreement: the pipeline's own online alarm
        self.online = OnlineAlarm(self.rule, self.every, self.stop_on_alarm, **alarm_options)
        self.base_samples, self.base_prompts = int(base_samples), base_prompts
        self.samples_file = Path(samples_file) if samples_file is not None else None
        self.history: list[dict[str, Any]] = []
        self.last_quiet_checkpoint: str | None = None
        self.checkpoints: list[dict[str, Any]] = []
        from_file = base if isinstance(base, (str, Path)) else None  # a base file may carry its own `holdout`
        self.base_holdout: float | None = load_base_holdout(base_holdout if base_holdout is not None else from_file)
        self.best_holdout_checkpoint: str | None = None
        self._funcs: list[RewardFunc] = []
        self._gold: RewardFunc | None = None
        self._holdout: list[RewardFunc] = []
        self._holdout_combine = "mean"
        self._batches: list[dict[Any, Any]] = []  # per generation batch: func index -> rewards, "gold", "prompts"
        self._key: tuple[int, int] | None = None
        self._trainer = None

    @property
    def last(self) -> Alarm | None:
        """The latest check's reading."""
        return self.online.last.alarm if self.online.last is not None else None

    @property
    def stopped_at(self) -> int | None:
        """The step a check of level ``alarm`` stopped training at (``stop_on_alarm``), else None."""
        return self.online.stopped_at

    @property
    def last_quiet_step(self) -> int:
        """The last step whose check read ``quiet``: the last policy the alarm did not flag (0: none)."""
        return self.online.last_quiet_step

    # ---------------------------------------------------------------------------------------
    # reward functions
    # ---------------------------------------------------------------------------------------
    def wrap(
        self,
        reward_funcs: RewardFunc | Sequence[RewardFunc],
        gold: RewardFunc | None = None,
        holdout: RewardFunc | Sequence[RewardFunc] | None = None,
        holdout_combine: str = "mean",
    ) -> list[RewardFunc]:
        """The reward functions for TRL, recording what they return (same names and values).
        ``gold``: the true utility, called on the same samples and recorded, not optimized.
        ``holdout``: held-out reward functions (their errors independent of the optimized reward's),
        called on the same samples and recorded, not optimized; several combine per sample by
        ``holdout_combine`` (mean, or median for draws on one scale: goodhart.eval.holdout.combine)."""
        funcs = [reward_funcs] if callable(reward_funcs) else list(reward_funcs)
        if not funcs or not all(callable(f) for f in funcs):
            raise TypeError("wrap() takes callable reward functions f(prompts, completions, **kwargs)")
        held = [] if holdout is None else [holdout] if callable(holdout) else list(holdout)
        if not all(callable(f) for f in held):
            raise TypeError("wrap(holdout=...) takes callable reward functions f(prompts, completions, **kwargs)")
        combine(np.zeros((1, 1)), holdout_combine)  # a bad rule is an error now, not at the first check
        self._funcs, self._gold, self._holdout, self._holdout_combine = funcs, gold, held, holdout_combine
        return [self._recording(i, f) for i, f in enumerate(funcs)]

    def _held_out(self, **call: Any) -> np.ndarray:
        """The held-out proxy of a batch: each function's scores, combined per sample."""
        return combine(np.stack([_floats(h(**call)) for h in self._holdout]), self._holdout_combine)

    def _recording(self, i: int, f: RewardFunc) -> RewardFunc:
        @functools.wraps(f)
        def recorded(prompts, completions, **kwargs):
            out = f(prompts=prompts, completions=completions, **kwargs)
            self._see_trainer(kwargs.get("log_metric"))
            key = (id(completions), len(completions))
            if not self._batches or key != self._key or i in self._batches[-1]:  # a new generation batch
                self._key = key
                self._batches.append({"prompts": [str(p) for p in prompts]})
                if self._gold is not None:
                    self._batches[-1]["gold"] = _floats(self._gold(prompts=prompts, completions=completions, **kwargs))
                if self._holdout:
                    self._batches[-1]["holdout"] = self._held_out(prompts=prompts, completions=completions, **kwargs)
            self._batches[-1][i] = _floats(out)
            return out

        return recorded

    def _see_trainer(self, log_metric: Any) -> None:
        trainer = getattr(log_metric, "__self__", None)
        if trainer is not None and trainer is not self._trainer:
            self.attach(trainer)

    def attach(self, trainer) -> None:
        """Run first among the trainer's callbacks, so the goodhart/ metrics this callback adds to
        a log reach every logger (the wrapped reward functions call this themselves under TRL)."""
        self._trainer = trainer
        cbs = trainer.callback_handler.callbacks
        if self in cbs:
            cbs.remove(self)
        cbs.insert(0, self)

    def _weights(self, args) -> np.ndarray:
        w = getattr(self._trainer, "reward_weights", None)
        if w is None:
            w = getattr(args, "reward_weights", None)
        w = np.ones(len(self._funcs)) if w is None else np.asarray([float(v) for v in w], dtype=np.float64)
        return w

    def _take(self, args) -> tuple[np.ndarray, np.ndarray | None, list[str], np.ndarray | None]:
        """Proxies (gold, prompts, held-out proxies) of the complete batches recorded since the last call."""
        w = self._weights(args)
        complete = [all(i in b for i in range(len(self._funcs))) for b in self._batches]
        done = [b for b, c in zip(self._batches, complete) if c]
        self._batches = [b for b, c in zip(self._batches, complete) if not c]  # a batch still being scored
        if not done:
            empty = np.empty(0)
            return empty, (empty if self._gold is not None else None), [], (empty if self._holdout else None)
        per = [np.stack([b[i] for i in range(len(self._funcs))], 1) for b in done]  # (B, F) each
        proxy = np.concatenate([np.nansum(p * w[None, :], 1) for p in per])
        gold = np.concatenate([b["gold"] for b in done]) if self._gold is not None else None
        held = np.concatenate([b["holdout"] for b in done]) if self._holdout else None
        return proxy, gold, [p for b in done for p in b["prompts"]], held

    # ---------------------------------------------------------------------------------------
    # base statistics
    # ---------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, processing_class=None, train_dataloader=None, **kw):
        self.online.resume_at(int(state.global_step))  # a resumed run checks at the multiples of every after it
        if self.base is not None:
            self._check_holdout()
            return
        saved = Path(args.output_dir) / BASE_FILE
        if saved.is_file():  # a resumed run: the base sampled at the real start
            self.base = load_base(saved, self.rule)
            self.base_holdout = load_base_holdout(saved)
            return
        if not self._funcs:
            raise RuntimeError("GoodhartCallback: pass reward_funcs=callback.wrap([...]) to the trainer, or give base=")
        prompts = self._prompts(train_dataloader)
        proxy, gold, held = self._sample_base(args, model, processing_class, prompts)
        if state.is_world_process_zero:
            saved.parent.mkdir(parents=True, exist_ok=True)
            extra = {
                **({"utility": gold} if gold is not None else {}),
                **({"holdout": held} if held is not None else {}),
            }
            atomic_savez(saved, proxy=proxy, **extra)  # atomic: a run killed mid-write must not resume from a torn base
            if self.samples_file is not None:
                flat = [p for p in prompts for _ in range(proxy.shape[1])]
                g, h = (None if a is None else a.ravel() for a in (gold, held))
                self._write_samples(args, "base", flat, proxy.ravel(), g, 0.0, h)
        self.base = BaseStats.for_rule(proxy, self.rule, per_prompt=False)
        if held is not None:
            self.base_holdout = float(np.nanmean(held))

    def _check_holdout(self) -> None:
        if self._holdout and self.base_holdout is None:
            raise RuntimeError(
                "GoodhartCallback: wrap(..., holdout=...) needs the base's held-out scores: a base file with a "
                "`holdout` array or column, base_holdout=, or no base= (the callback samples the base itself)"
            )

    def _prompts(self, train_dataloader) -> list[str]:
        if not isinstance(self.base_prompts, int):
            return [str(p) for p in self.base_prompts]
        ds = getattr(train_dataloader, "dataset", None)
        try:
            column = list(ds["prompt"])  # a datasets.Dataset
        except Exception:
            raise RuntimeError(
                "GoodhartCallback: cannot read prompts from the train dataset; give base_prompts=[...] or base="
            ) from None
        if not all(isinstance(p, str) for p in column[:1]):
            raise RuntimeError("GoodhartCallback samples the base for text prompts only; give base= for chat prompts")
        return list(dict.fromkeys(column))[: self.base_prompts]

    def _sample_base(
        self, args, model, tok, prompts: list[str]
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(P, base_samples) proxies (gold, held-out proxies) of the model's own completions, before any update."""
        import torch

        was_training = model.training
        model.eval()
        side = tok.padding_side
        tok.padding_side = "left"
        rows, golds, held = [], [], []
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(args.seed)
                for p in prompts:
                    enc = tok([p], return_tensors="pt").to(model.device)
                    out = model.generate(
                        **enc,
                        do_sample=True,
                        max_new_tokens=int(getattr(args, "max_completion_length", 64) or 64),
                        temperature=float(getattr(args, "temperature", 1.0) or 1.0),
                        top_p=float(getattr(args, "top_p", 1.0) or 1.0),
                        top_k=0,
                        num_return_sequences=self.base_samples,
                        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                    )
                    ids = out[:, enc["input_ids"].shape[1] :]
                    texts = tok.batch_decode(ids, skip_special_tokens=True)
                    ids_list = [list(map(int, r)) for r in ids]
                    rows.append(self._score([p] * len(texts), texts, ids_list, args))
                    if self._gold is not None:
                        golds.append(
                            _floats(self._gold(prompts=[p] * len(texts), completions=texts, completion_ids=ids_list))
                        )
                    if self._holdout:
                        held.append(
                            self._held_out(prompts=[p] * len(texts), completions=texts, completion_ids=ids_list)
                        )
        finally:
            tok.padding_side = side
            model.train(was_training)
        return np.stack(rows), (np.stack(golds) if golds else None), (np.stack(held) if held else None)

    def _score(self, prompts: list[str], completions: list[str], ids: list[list[int]], args) -> np.ndarray:
        noop = lambda *a, **k: None  # noqa: E731 - reward functions may log; nothing to log to yet
        parts = [
            _floats(f(prompts=prompts, completions=completions, completion_ids=ids, log_metric=noop, log_extra=noop))
            for f in self._funcs
        ]
        return np.nansum(np.stack(parts, 1) * self._weights(args)[None, :], 1)

    # ---------------------------------------------------------------------------------------
    # checks
    # ---------------------------------------------------------------------------------------
    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs if logs is not None else {}
        if not is_training_log(logs):
            return  # an evaluation or the end-of-training summary: no training samples
        step = int(state.global_step)
        seq_kl = trl_sequence_kl(logs)
        # The window a check reads: the samples scored since the previous log, every process's
        # (train/online_alarm.py). The samples file gets the same window under this step, with the
        # same KL, so `goodhart analyze` of it reads each check as it was read live.
        proxy, gold, prompts, held = _gathered(*self._take(args))
        if proxy.size and self.samples_file is not None and state.is_world_process_zero:
            self._write_samples(args, str(step), prompts, proxy, gold, seq_kl, held)
        if self.base is None or not self.online.due(step):
            return
        self.online.device = getattr(args, "device", None)
        c = self.online.read(step, proxy, seq_kl, self.base, gathered=True)
        if c is None:  # no samples since the last log, on any process: the check stays due
            return
        metrics = {M.integration_name(k): v for k, v in c.metrics().items()}
        metrics.update({M.INTEGRATION_PROXY: float(np.mean(proxy)), M.INTEGRATION_KL: seq_kl})
        metrics[M.INTEGRATION_SAMPLES] = float(proxy.size)
        if gold is not None:
            metrics[M.INTEGRATION_GOLD] = float(np.nanmean(gold))
        if held is not None and self.base_holdout is not None:
            metrics.update(_holdout_gain(held, prompts, self.base_holdout))
        if c.stop:
            control.should_training_stop = True
            metrics[M.INTEGRATION_STOPPED] = 1.0
        logs.update(metrics)
        if state.log_history and state.log_history[-1].get("step") == step:
            state.log_history[-1].update(metrics)  # trainer_state.json keeps them too
        self.history.append({"step": step, "level": c.level, **{k: _num(v) for k, v in metrics.items()}})

    def on_save(self, args, state, control, **kwargs):
        level = "quiet" if not self.history else self.history[-1]["level"]
        path = str(Path(args.output_dir) / f"checkpoint-{state.global_step}")
        rec = {"step": int(state.global_step), "path": path, "level": level}
        gain = self.history[-1].get(M.INTEGRATION_GAIN_HOLDOUT) if self.history else None
        if gain is not None:  # the latest check's held-out gain: the estimate's peak is the largest lower bound
            rec["gain_holdout"] = gain
            rec["gain_holdout_lo"] = self.history[-1].get(M.lo(M.INTEGRATION_GAIN_HOLDOUT))
        self.checkpoints.append(rec)
        if level == "quiet":
            self.last_quiet_checkpoint = path
        held = [c for c in self.checkpoints if c.get("gain_holdout_lo") is not None]
        if held:
            best = max(held, key=lambda c: (c["gain_holdout_lo"], c["gain_holdout"]))
            self.best_holdout_checkpoint = best["path"]

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        out = Path(args.output_dir) / SUMMARY_FILE
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.summary(), indent=1))
        tmp.replace(out)

    def _write_samples(self, args, point: str, prompts, proxy, gold, kl: float, held=None) -> None:
        """Append rows in the `goodhart analyze` schema (header on a new file)."""
        import csv

        f = self.samples_file if self.samples_file.is_absolute() else Path(args.output_dir) / self.samples_file
        f.parent.mkdir(parents=True, exist_ok=True)
        new = not f.is_file() or point == "base"
        with open(f, "w" if point == "base" else "a", newline="") as fh:
            w = csv.writer(fh)
            if new:
                extra = (["utility"] if self._gold is not None else []) + (["holdout"] if self._holdout else [])
                w.writerow(["point", "prompt", "proxy", *extra, "kl"])
            for i, (p, r) in enumerate(zip(prompts, proxy)):
                u = [repr(float(gold[i]))] if gold is not None else []
                h = [repr(float(held[i]))] if held is not None else []
                w.writerow([point, p, repr(float(r)), *u, *h, repr(float(kl))])

    def summary(self) -> dict[str, Any]:
        """Every check, where training stopped, the last quiet step and the last checkpoint not
        flagged, and the alarm rule (version and keys) the checks were read under."""
        from goodhart.eval.alarm import VERSION

        return {
            "every": self.every,
            "stop_on_alarm": self.stop_on_alarm,
            "alarm_version": VERSION,
            "rule": self.rule.key(),
            "stopped_at": self.stopped_at,
            "last_quiet_step": self.last_quiet_step,
            "last_quiet_checkpoint": self.last_quiet_checkpoint,
            "best_holdout_checkpoint": self.best_holdout_checkpoint,
            "base_holdout": self.base_holdout,
            "base": None if self.base is None else {"n": self.base.n, "sigma": self.base.sigma, "max": self.base.max},
            "checks": self.history,
            "checkpoints": self.checkpoints,
        }


def _floats(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _num(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def _gathered(proxy: np.ndarray, gold: np.ndarray | None, prompts: list[str], held: np.ndarray | None = None):
    """A log's window over every process (in rank order; as it is without torch.distributed)."""
    parts = gather_objects((proxy, gold, prompts, held))
    if len(parts) == 1:
        return proxy, gold, prompts, held
    golds = [g for _, g, _, _ in parts]
    helds = [h for _, _, _, h in parts]
    return (
        np.concatenate([p for p, _, _, _ in parts]),
        np.concatenate(golds) if all(g is not None for g in golds) else None,
        [q for _, _, ps, _ in parts for q in ps],
        np.concatenate(helds) if all(h is not None for h in helds) else None,
    )


def _holdout_gain(held: np.ndarray, prompts: list[str], base: float) -> dict[str, float]:
    """The window's mean held-out proxy and its gain over the base's mean, with a t interval over the
    window's prompts (each prompt's samples averaged first; the base mean taken as known)."""
    from goodhart.eval.bootstrap import t_ci

    h = np.asarray(held, dtype=np.float64)
    ok = np.isfinite(h)
    if not ok.any():
        return {}
    by: dict[str, list[float]] = {}
    for p, v in zip(np.asarray(prompts, dtype=object)[ok], h[ok]):
        by.setdefault(str(p), []).append(float(v))
    per = np.array([np.mean(v) for v in by.values()]) - base
    m, lo, hi = t_ci(per) if per.size > 1 else (float(per.mean()), float("nan"), float("nan"))
    g = M.INTEGRATION_GAIN_HOLDOUT
    return {M.INTEGRATION_HOLDOUT: float(np.mean(h[ok])), g: float(m), M.lo(g): float(lo), M.hi(g): float(hi)}


def _read_table(pd, p: Path):
    """A base-scores file as a DataFrame: .csv, .parquet, or JSON lines (anything else)."""
    if p.suffix == ".csv":
        return pd.read_csv(p)
    return pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_json(p, lines=True)
