"""What the rewards of a config *are*, beyond what the config calls them: a local checkpoint's
file contents, a hub checkpoint's cached commit, a callable's source (or explicit version), a
plug-in's release. The pool's score cache (base/pool.py) and a point's done check
(sweeps/point.py) key on the same identity.

`cheap=True` computes it only when that needs no user code imported and no large file read
(what `goodhart status` can afford): built-in rewards, hub checkpoints, local checkpoints up to
CHEAP_BYTES; otherwise it raises Unchecked naming the reward.

Imports: config.schema, goodhart.rewards.plugins (lazily).
"""

from __future__ import annotations

from pathlib import Path

from goodhart.pipeline.config import schema as C

CHEAP_BYTES = 64 << 20
"""The largest local checkpoint (all its files) that a cheap identity reads (~0.1 s to hash)."""


class Unchecked(Exception):
    """The identity needs user code imported (a callable, a plug-in) or a large checkpoint read."""


def _checkpoint_bytes(path: str) -> int | None:
    """Total size of a local checkpoint's files (None: not a local path, e.g. a hub id)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
    return None


def reward_identity(spec: C.RewardSpec | None, cheap: bool = False) -> object:
    """The identities of the rewards a spec names that the config alone does not pin down:
    HF checkpoints (content hash), callables (source or explicit version), plug-ins (release).
    None for built-in rewards."""
    from goodhart.rewards import plugins

    match spec:
        case C.HFReward():
            if cheap:
                size = _checkpoint_bytes(spec.path)
                if size is not None and size > CHEAP_BYTES:
                    raise Unchecked(f"checkpoint {spec.path} ({size / 2**20:.0f} MiB)")
            return plugins.checkpoint_identity(spec.path)
        case C.CallableReward():
            if cheap:
                raise Unchecked(f"callable {spec.target}")
            return plugins.callable_identity(spec.target)
        case C.PluginReward():
            if cheap:
                raise Unchecked(f"plug-in {spec.name}")
            return plugins.plugin_identity(spec.name)
        case C.SyntheticReward():
            return reward_identity(spec.utility, cheap)
        case C.SumReward():
            return [reward_identity(t, cheap) for t in spec.terms]
        case C.EnsembleReward():
            return [reward_identity(m, cheap) for m in spec.members]
    return None


def rewards_identity(cfg: C.RunConfig, cheap: bool = False) -> list[object]:
    """What the proxy and the utility of a config are (weights, source, release): the one identity
    that both the score cache and a point's done check (sweeps/point.py) key on."""
    return [reward_identity(cfg.reward, cheap), reward_identity(cfg.utility, cheap)]
