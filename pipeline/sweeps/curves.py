"""What makes points one curve: everything but the knob (and the seed).

A curve is read along KL with every optimizer on it together (the frontier), so its identity
is what the optimizers share: the true utility, the proxy, the base model, the eval prompts
and the pool size N. Two utility scales, two reward checkpoints or two callables are two
curves; seeds of one setting are one curve (aggregated in eval/goodhart.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from goodhart.eval import metrics as M
from goodhart.pipeline.config import schema as C

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")
_hash_cache: dict[tuple, str] = {}


def weights_hash(path: str) -> str | None:
    """blake2b of a checkpoint directory's weight files (names and bytes), 10 hex digits; None
    when `path` is not a local directory (a hub id: the id is its identity)."""
    d = Path(path)
    if not d.is_dir():
        return None
    files = sorted(f for f in d.rglob("*") if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES))
    stamp = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if stamp in _hash_cache:
        return _hash_cache[stamp]
    h = hashlib.blake2b(digest_size=5)
    for f in files:
        h.update(str(f.relative_to(d)).encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    _hash_cache[stamp] = h.hexdigest()
    return _hash_cache[stamp]


def _kw(kwargs: dict[str, Any]) -> str:
    return (
        "(" + ", ".join(f"{k}={json.dumps(v, sort_keys=True)}" for k, v in sorted(kwargs.items())) + ")"
        if kwargs
        else ""
    )


def law_text(law: C.LawConfig) -> str:
    """`student_t(df=3) x0.5`, `gaussian x1 +1` (loc shown when set)."""
    loc = f" {law.loc:+g}" if law.loc else ""
    return f"{law.label} x{law.scale:g}{loc}"


def reward_identity(spec: Any) -> str:
    """A reward's identity in a few words: what makes two rewards score differently."""
    t = spec.type
    if t == "hf":
        h = weights_hash(spec.path)
        lab = f" label={spec.label}" if spec.label else ""
        return f"hf:{spec.path}" + (f"@{h}" if h else "") + lab
    if t == "callable":
        return f"callable:{spec.target}{_kw(spec.kwargs)}"
    if t == "plugin":
        return f"plugin:{spec.name}{_kw(spec.kwargs)}"
    if t == "synthetic":
        return mitigation_text(spec, f"{reward_identity(spec.utility)} + {error_text(spec.error)}")
    if t == "distributional":
        return mitigation_text(spec, f"{law_text(spec.utility)} + {law_text(spec.error)}")
    if t == "ensemble":  # a learned ensemble: its members, combined (and transformed)
        inner = ", ".join(reward_identity(m) for m in spec.members)
        if len(spec.members) == 1:  # a single reward model, transformed: named as itself
            return mitigation_text(spec, inner)
        lam = f"(lam={spec.lam:g})" if spec.combine == "uwo" else ""
        return mitigation_text(spec, f"{spec.combine}{len(spec.members)}{lam}({inner})")
    if t == "sum":
        w = spec.weights or [1.0] * len(spec.terms)
        return " + ".join(f"{wi:g}*({reward_identity(r)})" for wi, r in zip(w, spec.terms))
    # sentiment, length, keyword: the type plus any non-default option
    extra = spec.model_dump(exclude={"type"}, exclude_defaults=True)
    return t + _kw(extra)


def mitigation_text(spec: Any, proxy: str) -> str:
    """`min4(...)`, `clip(q=0.99)[...]`: an ensemble or a transform makes another proxy (another curve)."""
    e, t = getattr(spec, "ensemble", None), getattr(spec, "transform", None)
    if e is not None:
        opts = [f"lam={e.lam:g}"] if e.combine == "uwo" else []
        opts += [f"rho={e.rho:g}"] if getattr(e, "rho", 0) else []
        proxy = f"{e.combine}{e.k}" + (f"({', '.join(opts)})" if opts else "") + f"({proxy})"
    if t is not None:
        from goodhart.rewards.transform import Transform

        proxy = f"{Transform(t.kind, t.quantile, t.scale).label}[{proxy}]"
    return proxy


def mitigation_columns(cfg: C.RunConfig, pool: Any = None) -> dict[str, Any]:
    """A mitigated proxy's result columns: its transform (and the base reward it is anchored at,
    from the pool that fitted it) and its ensemble's size and combination. None for a plain proxy."""
    r, out = cfg.reward, {}
    e = getattr(r, "ensemble", None)
    if e is not None:
        out[M.ENSEMBLE_K], out[M.ENSEMBLE_COMBINE] = e.k, e.combine
    elif isinstance(r, C.EnsembleReward):
        out[M.ENSEMBLE_K], out[M.ENSEMBLE_COMBINE] = len(r.members), r.combine
    t = getattr(r, "transform", None)
    if t is not None:
        from goodhart.rewards.transform import Transform

        tr = Transform(t.kind, t.quantile, t.scale)
        out[M.REWARD_TRANSFORM] = tr.label
        state = getattr(pool, "transform", None)
        if state is not None:
            out[M.REWARD_TRANSFORM_REF] = tr.load_state(state).reference
    return out


def error_text(err: C.ErrorConfig) -> str:
    mode = "" if err.mode == "independent" else f" [{err.mode}:{err.feature.pattern}]"
    salt = "" if err.salt == "goodhart" else f" salt={err.salt}"
    return f"{law_text(err.law)}{mode}{salt}"


def utility_identity(cfg: C.RunConfig) -> str:
    if cfg.utility is not None:
        return reward_identity(cfg.utility)
    r = cfg.reward
    if isinstance(r, C.SyntheticReward):
        return reward_identity(r.utility)
    if isinstance(r, C.DistributionalReward):
        return law_text(r.utility)
    return f"same as proxy ({reward_identity(r)})"


def curve_identity(cfg: C.RunConfig) -> dict[str, str]:
    """The five columns M.CURVE_KEYS of a point's row."""
    clip = "" if cfg.clip is None else f" clip[{cfg.clip.low}, {cfg.clip.high}]"
    if cfg.distributional:
        model, prompts = "none (distributional)", f"{cfg.prompts.n_eval} draws"
    else:
        m, s = cfg.model, cfg.sampling
        h = None if m.name == "tiny" else weights_hash(str(m.path))
        model = m.name if m.name == "tiny" else f"{m.path}" + (f"@{h}" if h else "")
        model += f" T={s.temperature:g} top_p={s.top_p:g} len={s.max_new_tokens}"
        p = cfg.prompts
        prompts = f"{p.source}:{p.split} n_eval={p.n_eval} seed={p.seed}"
    g = cfg.sampling.grown_from  # a pool grown by resolve rounds: its own prompt set and draws
    grown = f" grown from {g.n_eval} x {g.n}" if g is not None else ""
    return {
        M.CURVE_UTILITY: utility_identity(cfg),
        M.CURVE_PROXY: reward_identity(cfg.reward) + clip,
        M.CURVE_MODEL: model,
        M.CURVE_PROMPTS: prompts + grown,
        M.CURVE_POOL: f"N={cfg.sampling.n}" + grown,
    }
