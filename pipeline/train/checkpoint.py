"""Atomic, resumable checkpoints of a training run, under <point_dir>/checkpoints/.

    checkpoints/step-000040/
        model.safetensors, optimizer.bin, random_states_<rank>.pkl, ...   accelerate's state
        trainer_state.json                                                  step, KL controller, ...

A checkpoint is written into `.tmp-step-<n>/` by every process (accelerate's `save_state`
knows DDP and DeepSpeed: sharded optimizers, per-process RNG states), then renamed into
place by the main process: a directory named `step-*` is always complete. Older
checkpoints are deleted after the rename (the last `keep` stay).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from goodhart.pipeline.io import atomic_write_json, follow_umask, read_json

STATE = "trainer_state.json"
_NAME = re.compile(r"step-(\d+)$")


class Checkpointer:
    """save(step, state) / latest() / load(path) for the models and optimizers `accelerator`
    prepared. `state` is anything JSON-able (step, KL controller, counters)."""

    def __init__(self, accelerator, root: Path, keep: int = 1):
        self.acc, self.root, self.keep = accelerator, Path(root), max(1, keep)

    def all(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        found = [
            (int(m.group(1)), p) for p in self.root.iterdir() if (m := _NAME.match(p.name)) and (p / STATE).is_file()
        ]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        done = self.all()
        return done[-1] if done else None

    def save(self, step: int, state: dict[str, Any]) -> Path:
        acc = self.acc
        final = self.root / f"step-{step:06d}"
        tmp = self.root / f".tmp-step-{step:06d}"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)  # a killed writer's leftovers
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()  # every process's files (its RNG state) are in tmp before the rename
        if acc.is_main_process:
            atomic_write_json(tmp / STATE, {**state, "step": step})  # last inside: marks it complete
            follow_umask(tmp)  # torch.save / safetensors write 0600
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            for old in self.all()[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        return final

    def load(self, path: Path) -> dict[str, Any]:
        """Restore models, optimizers and RNG states from `path`; returns its trainer state."""
        self.acc.load_state(str(path))
        return read_json(Path(path) / STATE)
