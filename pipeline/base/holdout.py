"""The held-out proxy's scores (`eval.holdout`; the science is eval/holdout.py, the manual
docs/holdout.md): R2 = V + X2 on the base pool, once per pool, and on any policy's samples.

Sources:

* ``independent`` -- k draws of the proxy's own error law (or `eval.holdout.law`), each added to
  the proxy's own utility V, combined per sample (median by default). Text: the synthetic error
  in `independent` mode under the salts ``<error salt>#<holdout salt><j>`` (an ensemble's members
  use ``#member<j>``: never the same field); distributional: member j of prompt p from its own
  random stream, keyed by the laws, the seed, the salt, j and p (the proxy's own draw and its
  ensemble members use other streams). `shared` mixes in the proxy's own error X1 (a stress test
  of the assumption).
* ``rewards`` -- reward models (any reward spec) scored on the pool's texts; cached beside the
  pool's own scores, keyed by what the rewards are (base/identity.py).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from goodhart.eval.holdout import combine
from goodhart.pipeline.config import schema as C
from goodhart.pipeline.io import UnreadableFile, atomic_savez, cache_dir, read_npz, short_hash
from goodhart.rewards.laws import Law


@dataclass
class Holdout:
    """The held-out proxy on a base pool: (P, N) values, members combined."""

    values: np.ndarray
    k: int
    source: str
    """What it is, in words (the M.HOLDOUT_SOURCE column)."""
    key: str
    """Its identity beside the pool's (file names, caches)."""


def _law(cfg: C.RunConfig) -> C.LawConfig:
    """The held-out error's law: eval.holdout.law, else the proxy's own error law."""
    h = cfg.eval.holdout
    assert h is not None
    if h.law is not None:
        return h.law
    r = cfg.reward
    if isinstance(r, C.DistributionalReward):
        return r.error
    assert isinstance(r, C.SyntheticReward)
    return r.error.law


def source_text(cfg: C.RunConfig) -> str:
    """The held-out proxy in words: `independent 5 x pareto(alpha=1.5) x0.3, median` or the rewards'."""
    h = cfg.eval.holdout
    if h is None:
        return ""
    if h.source == "rewards":
        names = ", ".join(_reward_name(r) for r in h.rewards)
        return f"rewards [{names}], {h.how}"
    law = _law(cfg)
    shared = f", shared {h.shared:g}" if h.shared else ""
    salt = "" if h.salt == "holdout" else f", salt {h.salt}"
    return f"independent {h.k} x {law.label} x{law.scale:g}, {h.how}{shared}{salt}"


def _reward_name(spec: C.RewardSpec) -> str:
    from pathlib import Path

    match spec:
        case C.HFReward():
            return f"hf:{Path(spec.path).name}"
        case C.CallableReward():
            return spec.target
        case C.PluginReward():
            return f"plugin:{spec.name}"
    return spec.type


# ---------------------------------------------------------------------------------------------
# The base pool
# ---------------------------------------------------------------------------------------------
def pool_holdout(cfg: C.RunConfig, pool) -> Holdout | None:
    """The held-out proxy on the run's base pool (None without eval.holdout)."""
    h = cfg.eval.holdout
    if h is None:
        return None
    key = short_hash({"pool": pool.key, "holdout": h.model_dump(mode="json"), "identity": identity(cfg)})
    src = source_text(cfg)
    if isinstance(cfg.reward, C.DistributionalReward):
        values = _distributional(cfg, pool)
        return Holdout(values, h.k, src, key)
    if h.source == "independent":
        flat_p = [p for p, row in zip(pool.prompts, pool.completions) for _ in row]
        flat_c = [c for row in pool.completions for c in row]
        x2 = combine(np.stack(_text_errors(cfg, flat_p, flat_c)), h.how).reshape(pool.shape)
        return Holdout(_own_utility(cfg, pool) + _mixed(cfg, x2, pool.error), h.k, src, key)
    path = cache_dir() / "pools" / pool.key.split("/")[0] / f"holdout-{key}.npz"
    try:
        values = read_npz(path)["values"] if path.is_file() else None
    except (UnreadableFile, KeyError):
        values = None
    if values is None:
        flat_p = [p for p, row in zip(pool.prompts, pool.completions) for _ in row]
        flat_c = [c for row in pool.completions for c in row]
        members = score_rewards(h.rewards, flat_p, flat_c).reshape(len(h.rewards), *pool.shape)
        values = combine(members, h.how)
        atomic_savez(path, values=values)
    return Holdout(values, len(h.rewards), src, key)


def identity(cfg: C.RunConfig) -> object:
    """What the held-out rewards are (checkpoint contents, callable sources; None for draws)."""
    from goodhart.pipeline.base.identity import reward_identity

    h = cfg.eval.holdout
    if h is None or h.source != "rewards":
        return None
    return [reward_identity(r) for r in h.rewards]


def _mixed(cfg: C.RunConfig, x2: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """X2 = shared * X1 + (1 - shared) * X2' (shared 0: X2' itself)."""
    h = cfg.eval.holdout
    assert h is not None
    return x2 if not h.shared else h.shared * np.asarray(x1) + (1 - h.shared) * x2


def _distributional(cfg: C.RunConfig, pool) -> np.ndarray:
    """k independent error draws per sample, from streams of their own, combined and added to the
    pool's V (the draws are kept for the next points of a sweep in the process, as the pool is)."""
    from goodhart.pipeline.base.scoring import law

    h = cfg.eval.holdout
    r = cfg.reward
    assert h is not None and isinstance(r, C.DistributionalReward)
    P, N = pool.shape
    x2 = _draw_x2(law(r.utility), law(r.error), law(_law(cfg)), P, N, cfg.seed, h.salt, h.k, h.how)
    return pool.utility + _mixed(cfg, x2, pool.error)


@functools.lru_cache(maxsize=4)
def _draw_x2(
    utility: Law, error: Law, x2law: Law, P: int, N: int, seed: int, salt: str, k: int, how: str
) -> np.ndarray:
    """(P, N): member j of prompt p drawn from its own stream [seed, the three laws, the salt, j, p],
    combined per sample; prompt by prompt (memory k x N). Read-only: shared by the sweep's points."""
    from goodhart.rewards.distributional import law_key

    base = [seed % 2**64, law_key(utility), law_key(error), law_key(x2law), int(short_hash(["holdout", salt], 16), 16)]
    x2 = np.empty((P, N))
    for p in range(P):
        draws = np.stack([x2law.sample(N, np.random.default_rng([*base, j, p])) for j in range(k)])
        x2[p] = combine(draws, how)
    x2.flags.writeable = False
    return x2


def _own_utility(cfg: C.RunConfig, pool) -> np.ndarray:
    """The synthetic proxy's own utility on the pool (the run's `utility:` when it is the same)."""
    r = cfg.reward
    assert isinstance(r, C.SyntheticReward)
    if cfg.utility is None or cfg.utility == r.utility:
        return pool.utility
    from goodhart.pipeline.base.scoring import build_reward

    flat_p = [p for p, row in zip(pool.prompts, pool.completions) for _ in row]
    flat_c = [c for row in pool.completions for c in row]
    return build_reward(r.utility).score(flat_p, flat_c).reshape(pool.shape)


def _text_errors(cfg: C.RunConfig, prompts: Sequence[str], completions: Sequence[str]) -> list[np.ndarray]:
    from goodhart.pipeline.base.scoring import law
    from goodhart.rewards.synthetic import SyntheticError

    h = cfg.eval.holdout
    r = cfg.reward
    assert h is not None and isinstance(r, C.SyntheticReward)
    x2law = law(_law(cfg))
    return [
        SyntheticError(x2law, "independent", member_salt(r.error.salt, h.salt, j)).score(prompts, completions)
        for j in range(h.k)
    ]


def member_salt(error_salt: str, salt: str, j: int) -> str:
    """Held-out member j's hash salt (an ensemble's members are `#member<j>`)."""
    return f"{error_salt}#{salt}{j}"


def score_rewards(specs: Sequence[C.RewardSpec], prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
    """(k, n): each held-out reward model's scores of the texts."""
    from goodhart.pipeline.base.scoring import build_reward

    return np.stack([np.asarray(build_reward(s).score(prompts, completions), dtype=np.float64) for s in specs])


# ---------------------------------------------------------------------------------------------
# A policy's samples (trained optimizers)
# ---------------------------------------------------------------------------------------------
def sample_holdout(
    cfg: C.RunConfig, prompts: Sequence[str], completions: Sequence[str], utility: np.ndarray, error: np.ndarray
) -> np.ndarray:
    """R2 of a policy's samples (flat lists; utility and error = proxy - utility: their scores),
    as the base pool's R2 is made."""
    h = cfg.eval.holdout
    assert h is not None
    if h.source == "rewards":
        return combine(score_rewards(h.rewards, prompts, completions), h.how)
    v = np.asarray(utility, dtype=np.float64)
    if cfg.utility is not None and cfg.utility != cfg.reward.utility:  # type: ignore[union-attr]
        from goodhart.pipeline.base.scoring import build_reward

        v = build_reward(cfg.reward.utility).score(prompts, completions)  # type: ignore[union-attr]
    x2 = combine(np.stack(_text_errors(cfg, prompts, completions)), h.how)
    return v + _mixed(cfg, x2, error)
