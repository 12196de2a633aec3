"""The base-policy pool: N samples per held-out prompt and their scores, shared by every
point of a sweep (every beta of tilt, every n of best-of-n).

Completions are cached under $GOODHART_CACHE/pools/<key>/, keyed by the base model, the
prompts, the sampling settings, N and the seed; scores beside them, keyed by the reward config,
what the rewards are (checkpoint content, callable source or version, plug-in release; see
base/identity.py) and, in feature mode, the fitted calibration. A second point or a re-run loads,
not samples.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from goodhart.pipeline.base.identity import reward_identity, rewards_identity  # noqa: F401 (re-exported)
from goodhart.pipeline.config import schema as C
from goodhart.pipeline.io import (
    UnreadableFile,
    atomic_savez,
    atomic_write_json,
    cache_dir,
    read_json,
    read_npz,
    short_hash,
)
from goodhart.rewards.base import check_array

if TYPE_CHECKING:  # the rewards (scipy.stats, ~1.4 s of CPU) load where a pool is made, not with
    # pool_memo (`goodhart tails FILE` keeps its Student-t reference through it)
    from goodhart.pipeline.base.scoring import Scorer
    from goodhart.rewards.laws import Law


@dataclass
class Pool:
    """(P, N) arrays for P prompts x N base samples; texts are None in distributional mode."""

    prompts: list[str] | None
    completions: list[list[str]] | None
    proxy: np.ndarray
    utility: np.ndarray
    error: np.ndarray
    key: str
    calibration: dict | None = None
    clipped_fraction: float | None = None
    """Fraction of proxy scores `clip` clipped (None when clip is off)."""
    members: np.ndarray | None = None
    """(k, P, N) the ensemble members' proxies, before combining and transforming (None: one proxy)."""
    transform: dict | None = None
    """The proxy transform's fitted state (its base quantiles; None: no transform)."""

    @property
    def shape(self) -> tuple[int, int]:
        return self.proxy.shape  # type: ignore[return-value]


def _sampling_key(cfg: C.RunConfig, prompts: list[str], n: int, seed: int) -> str:
    from goodhart.pipeline.base.models import model_identity

    s = cfg.sampling
    return short_hash(
        {
            "model": model_identity(cfg.model),
            "dtype": cfg.model.dtype,
            "prompts": short_hash(prompts),
            "n": n,
            "max_new_tokens": s.max_new_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": seed,
            # another engine draws other samples (hf, the default, is left out: pools cached before
            # the key existed are hf pools)
            **({"engine": s.engine} if s.engine != "hf" else {}),
        }
    )


def cached_completions(
    cfg: C.RunConfig, prompts: list[str], n: int, seed: int, progress: bool, desc: str
) -> tuple[str, list[list[str]]]:
    """(key, completions) for prompts x n base samples, sampling only on a cache miss."""
    key = _sampling_key(cfg, prompts, n, seed)
    path = cache_dir() / "pools" / key / "completions.json"
    if path.is_file():
        return key, read_json(path)["completions"]
    from goodhart.pipeline.base.sampling import pool_completions

    partial = path.with_name("completions.partial.json")  # an interrupted pool goes on from here
    comps = pool_completions(cfg, prompts, n, seed, progress, desc, resume=partial)
    atomic_write_json(path, {"prompts": prompts, "completions": comps})
    partial.unlink(missing_ok=True)
    return key, comps


def calibrate(cfg: C.RunConfig, scorer: Scorer, train_prompts: list[str], progress: bool) -> dict | None:
    """Fit a feature-mode error's CDF on base samples of the *train* prompts, so the
    held-out pool is scored by a calibration it was not fitted on. A proxy transform is anchored
    at the raw proxy of the same samples (every optimizer then sees one transform). Returns the
    error's state (None unless feature mode)."""
    err = scorer.error
    feature = err is not None and err.mode == "feature"
    if not feature and scorer.transform is None:
        return None
    assert isinstance(cfg.reward, C.SyntheticReward | C.EnsembleReward)
    want = cfg.reward.error.calibration_samples if isinstance(cfg.reward, C.SyntheticReward) else 4096
    per = max(1, -(-want // len(train_prompts)))
    _, comps = cached_completions(cfg, train_prompts, per, cfg.seed + 1, progress, "calibration samples")
    flat = [c for row in comps for c in row]
    if feature:
        for e in scorer.errors:  # ensemble members share the feature: the same fit each
            e.fit(flat)
    if scorer.transform is not None:
        flat_p = [p for p, row in zip(train_prompts, comps) for _ in row]
        scorer.transform.fit(scorer.raw_proxy(flat_p, flat))
    return err.state() if feature else None


@functools.lru_cache(maxsize=4)
def cached_draw(
    utility: Law,
    error: Law,
    n_prompts: int,
    n: int,
    seed: int,
    k: int = 1,
    block: tuple[int, int] | None = None,
    rho: float = 0.0,
    info: bool = False,
) -> dict[str, np.ndarray]:
    """rewards.distributional.draw (k > 1: rewards.ensemble.draw_members, or with `info` its
    information-matched single proxy draw_info), kept for the next points of a sweep in the same
    process: the mitigations and knobs of one law share one draw. The arrays are read-only, so
    nothing can change a draw another point will reuse. `block`: one block of a grown pool
    (base/grow.py)."""
    if k == 1:
        from goodhart.rewards.distributional import draw

        out = draw(utility, error, n_prompts, n, seed, block)
    elif info:
        from goodhart.rewards.ensemble import draw_info

        out = draw_info(utility, error, n_prompts, n, seed, k, rho, block)
    else:
        from goodhart.rewards.ensemble import draw_members

        out = draw_members(utility, error, n_prompts, n, seed, k, block, rho)
    for v in out.values():
        v.flags.writeable = False
    return out


def distributional_draw(cfg: C.RunConfig, k: int = 1, rho: float = 0.0, info: bool = False) -> dict[str, np.ndarray]:
    """The config's draw (k > 1: with the ensemble's members, sharing `rho`; `info`: the
    information-matched single proxy): the first pass's own, or a grown pool assembled from its
    blocks (base/grow.py), the first of which is that first pass."""
    from goodhart.pipeline.base.scoring import law

    r, g = cfg.reward, cfg.sampling.grown_from
    assert isinstance(r, C.DistributionalReward)
    u, x, P, n = law(r.utility), law(r.error), cfg.prompts.n_eval, cfg.sampling.n
    if g is None:
        return cached_draw(u, x, P, n, cfg.seed, k, None, rho, info)
    from goodhart.pipeline.base.grow import blocks

    parts = [
        (b, cached_draw(u, x, g.n_eval, b.s1 - b.s0, cfg.seed, k, None if b.first else (b.group, b.rng), rho, info))
        for b in blocks(g.n_eval, g.n, P, n)
    ]
    out = {}
    for name in parts[0][1]:
        lead = parts[0][1][name].shape[:-2]  # (k,) for members
        a = np.empty((*lead, P, n))
        for b, arr in parts:
            a[..., b.p0 : b.p1, b.s0 : b.s1] = arr[name]
        a.flags.writeable = False
        out[name] = a
    return out


def _read_scores(path) -> dict[str, np.ndarray] | None:
    """The cached scores, or None when there are none or the file is torn (then they are scored again)."""
    if not path.is_file():
        return None
    try:
        out = read_npz(path)
    except UnreadableFile:
        return None
    return out if {"proxy", "utility", "error"} <= set(out) else None


def check_rewards_exist(cfg: C.RunConfig, callables: bool = True) -> None:
    """Every plug-in a config names is installed and (with `callables`) every callable imports:
    RewardError (one line) before a sweep opens anything, not once per point after it started."""
    from goodhart.rewards import plugins
    from goodhart.rewards.base import RewardError

    def walk(spec: object) -> None:
        match spec:
            case C.PluginReward():
                plugins.plugin_entry(spec.name)
            case C.CallableReward() if callables:
                try:
                    plugins.load_callable(spec.target)
                except RewardError:
                    raise
                except Exception as e:  # the user's module raised while importing
                    raise RewardError(
                        f"reward callable '{spec.target}': importing it raised {type(e).__name__}: {str(e)[:120]}"
                    ) from None
            case C.SyntheticReward():
                walk(spec.utility)
            case C.SumReward():
                for t in spec.terms:
                    walk(t)
            case C.EnsembleReward():
                for m in spec.members:
                    walk(m)

    walk(cfg.reward)
    walk(cfg.utility)


def base_pool(
    cfg: C.RunConfig, eval_prompts: list[str] | None, train_prompts: list[str] | None, progress: bool = True
) -> Pool:
    """The pool for this config: sampled (or loaded) and scored (or loaded)."""
    n = cfg.sampling.n
    if isinstance(cfg.reward, C.DistributionalReward):
        arr = distributional_draw(cfg)
        for part, spec in (("utility", cfg.reward.utility), ("error", cfg.reward.error), ("proxy", None)):
            if id(arr[part]) not in _CHECKED:  # a frozen draw (cached_draw) is checked once, not at every point
                check_array(f"distributional {part}" + (f" {spec.label} x{spec.scale:g}" if spec else ""), arr[part])
                _remember_checked(arr[part])
        from goodhart.rewards.distributional import STREAM_VERSION

        key = short_hash(
            {
                "distributional": cfg.reward.model_dump(),
                "P": cfg.prompts.n_eval,
                "n": n,
                "seed": cfg.seed,
                "stream": STREAM_VERSION,  # a pool saved by another stream is another pool
                # a grown pool (its blocks' own streams); absent for a first pass: keys unchanged
                **({"grown": cfg.sampling.grown_from.model_dump()} if cfg.sampling.grown_from else {}),
            }
        )
        if cfg.reward.ensemble is None and cfg.reward.transform is None:
            return Pool(None, None, arr["proxy"], arr["utility"], arr["error"], key)
        return mitigated_distributional(cfg, arr, key)

    from goodhart.pipeline.base.scoring import Scorer

    assert eval_prompts is not None and train_prompts is not None
    scorer = Scorer(cfg)
    calibration = calibrate(cfg, scorer, train_prompts, progress)
    rkey = short_hash(
        {
            "reward": cfg.reward.model_dump(),
            "utility": cfg.utility and cfg.utility.model_dump(),
            # what the rewards are, not only what the config calls them: weights, source, release
            "identity": rewards_identity(cfg),
            "clip": cfg.clip and cfg.clip.model_dump(),
            "calibration": calibration,
            # the transform's base quantiles: a different base sample is a different proxy
            **({"transform": scorer.transform.state()} if scorer.transform is not None else {}),
        }
    )
    if cfg.sampling.grown_from is None:
        key, comps = cached_completions(cfg, eval_prompts, n, cfg.seed, progress, "base samples")
        sc = _scores(scorer, eval_prompts, comps, cache_dir() / "pools" / key / f"scores-{rkey}.npz")
    else:  # blocks, each sampled and scored once (base/grow.py)
        key, comps, sc = _grown_text_pool(cfg, scorer, eval_prompts, rkey, progress)
    proxy, utility, error, members = sc["proxy"], sc["utility"], sc["error"], sc.get("members")
    clipped = float(sc["clipped_fraction"]) if "clipped_fraction" in sc else None
    if cfg.clip is not None and clipped is None:  # a cache written before the fraction was kept
        lo = -np.inf if cfg.clip.low is None else cfg.clip.low
        hi = np.inf if cfg.clip.high is None else cfg.clip.high
        clipped = float(np.mean((proxy <= lo) | (proxy >= hi)))  # at a bound: an upper estimate
    tstate = scorer.transform.state() if scorer.transform is not None else None
    return Pool(eval_prompts, comps, proxy, utility, error, f"{key}/{rkey}", calibration, clipped, members, tstate)


def _scores(scorer: Scorer, prompts: list[str], comps: list[list[str]], spath) -> dict[str, np.ndarray]:
    """proxy, utility, error (P, n) (and members, clipped_fraction) of these completions: read
    from spath, or scored and saved there."""
    cached = _read_scores(spath)
    if cached is not None:
        return cached
    flat_p = [p for p, row in zip(prompts, comps) for _ in row]
    flat_c = [c for row in comps for c in row]
    parts = scorer.components(flat_p, flat_c)
    P, n = len(prompts), len(comps[0]) if comps else 0
    out = {k: parts[k].reshape(P, n) for k in ("proxy", "utility", "error")}
    if "members" in parts:
        out["members"] = parts["members"].reshape(-1, P, n)
    if scorer.clip is not None:
        out["clipped_fraction"] = np.float64(scorer.clip.clipped_fraction)
    atomic_savez(spath, **out)
    return out


def _grown_text_pool(cfg: C.RunConfig, scorer: Scorer, prompts: list[str], rkey: str, progress: bool):
    """(key, completions, scores) of a grown text pool: each block sampled (its own seed) and
    scored once, cached under its own key; block (0, 0) is the first pass's cache entry."""
    from goodhart.pipeline.base.grow import block_seed, blocks

    g = cfg.sampling.grown_from
    assert g is not None
    P, n = len(prompts), cfg.sampling.n
    comps: list[list[str]] = [[""] * n for _ in range(P)]
    out: dict[str, np.ndarray] = {}
    keys, clipped = [], 0.0
    for b in blocks(g.n_eval, g.n, P, n):
        bp = prompts[b.p0 : b.p1]
        bkey, bc = cached_completions(cfg, bp, b.s1 - b.s0, block_seed(cfg.seed, b), progress, "base samples")
        sc = _scores(scorer, bp, bc, cache_dir() / "pools" / bkey / f"scores-{rkey}.npz")
        for j, row in enumerate(bc):
            comps[b.p0 + j][b.s0 : b.s1] = row
        for name, arr in sc.items():
            if name == "clipped_fraction":
                clipped += float(arr) * (b.p1 - b.p0) * (b.s1 - b.s0) / (P * n)
                continue
            if name not in out:
                out[name] = np.empty((*arr.shape[:-2], P, n))
            out[name][..., b.p0 : b.p1, b.s0 : b.s1] = arr
        keys.append(bkey)
    if scorer.clip is not None:
        out["clipped_fraction"] = np.float64(clipped)
    return short_hash(keys), comps, out


def mitigated_distributional(cfg: C.RunConfig, arr: dict[str, np.ndarray], key: str):
    """The Pool of a distributional proxy with an ensemble and/or a transform; `arr` is the single
    proxy's draw (V and member 0's error)."""
    from goodhart.rewards.base import check_array
    from goodhart.rewards.ensemble import combine

    r = cfg.reward
    assert isinstance(r, C.DistributionalReward)
    P, n = arr["proxy"].shape
    utility, proxy, members = arr["utility"], arr["proxy"], None
    e = r.ensemble
    if e is not None and e.combine == "info":  # one proxy, its error scaled: no members
        one = distributional_draw(cfg, e.k, e.rho, info=True)
        proxy = check_array("distributional information-matched proxy", one["proxy"])
    elif e is not None:
        ens = distributional_draw(cfg, e.k, e.rho)
        members = check_array("distributional ensemble members", ens["members"])
        proxy = combine(members, e.combine, e.lam)
    tstate = None
    if r.transform is not None:  # fitted on the pool's own proxy: once per pool and process
        t = r.transform
        proxy, tstate = pool_memo(_transformed, proxy, kind=t.kind, quantile=t.quantile, scale=t.scale)
    key = short_hash({"base": key, "transform": tstate})
    return Pool(None, None, proxy, utility, proxy - utility, key, members=members, transform=tstate)


def _transformed(proxy: np.ndarray, kind: str, quantile: float | None, scale: float) -> tuple[np.ndarray, dict]:
    """The proxy through its transform fitted on itself (a distributional pool is a base sample),
    and the transform's state."""
    from goodhart.rewards.transform import Transform

    t = Transform(kind, quantile, scale)
    out = t.fit(proxy)(proxy)
    out.flags.writeable = False
    return out, t.state()


_MEMO: dict[tuple, tuple[object, int]] = {}
POOL_MEMO_BYTES = 256 * 2**20
"""How much a process keeps of pool-derived results in its own memory (arrays counted, a file's
memory map not: the OS shares and drops those pages; oldest dropped first). The arena's law,
with its 9 mitigations' pools and 4 ensemble members, needs about 100 MB."""

POOL_MEMO_ENTRIES = 64
"""...and at most this many results (a mapped one holds its file's pages until dropped)."""

STATS_CACHE_MB = 2048
"""Default bound of the disk cache of per-pool statistics, $GOODHART_CACHE/stats/ (least
recently used files go first; GOODHART_STATS_CACHE_MB overrides it, 0 turns the cache off). The
alarm's null of one 32 x 65,536 pool is ~370 MB: the distributional sweep's four laws fit."""


def _nbytes(o: object) -> int:
    import dataclasses

    from goodhart.pipeline.io import is_mapped

    if isinstance(o, np.ndarray):
        return 0 if is_mapped(o) else o.nbytes
    if dataclasses.is_dataclass(o):
        return sum(_nbytes(getattr(o, f.name)) for f in dataclasses.fields(o))
    if isinstance(o, (list, tuple)):
        return sum(_nbytes(x) for x in o)
    if isinstance(o, dict):
        return sum(_nbytes(x) for x in o.values())
    return 0


_IDENTS: dict[int, tuple] = {}
_CHECKED: set[int] = set()


def _remember_checked(a: np.ndarray) -> None:
    """Mark a frozen array as checked by check_array while it lives (nothing can change it)."""
    import weakref

    if _frozen(a) and id(a) not in _CHECKED:
        _CHECKED.add(id(a))
        weakref.finalize(a, _CHECKED.discard, id(a))


def _frozen(a: np.ndarray) -> bool:
    """Nothing can write to this array's memory: it and every array it views are read-only and
    the memory below them is immutable (bytes) or a read-only map (cached_draw, read_tree)."""
    import mmap

    b: object = a
    while isinstance(b, np.ndarray):
        if b.flags.writeable:
            return False
        b = b.base
    return b is None or isinstance(b, bytes | mmap.mmap)


def _ident(a: np.ndarray) -> tuple:
    """A digest of an array's bytes, its shape and dtype (a pool reloaded by the next point is the
    same pool). Remembered for a frozen array while it lives (the same draw, point after point)."""
    import hashlib
    import weakref

    if id(a) in _IDENTS:
        return _IDENTS[id(a)]
    c = np.ascontiguousarray(a)
    out = hashlib.blake2b(c.data, digest_size=16).hexdigest(), c.shape, str(c.dtype)
    if isinstance(a, np.ndarray) and _frozen(a):
        _IDENTS[id(a)] = out
        weakref.finalize(a, _IDENTS.pop, id(a), None)
    return out


def stats_cache_bytes() -> int:
    """The disk cache's bound in bytes (GOODHART_STATS_CACHE_MB, else STATS_CACHE_MB; 0: off)."""
    import os

    raw = os.environ.get("GOODHART_STATS_CACHE_MB", "").strip()
    try:
        mb = float(raw) if raw else STATS_CACHE_MB
    except ValueError:
        mb = float("nan")
    if not 0 <= mb < float("inf"):
        from goodhart.pipeline.errors import UserError

        raise UserError(f"GOODHART_STATS_CACHE_MB={raw!r}: expected a number of megabytes >= 0 (0 turns the cache off)")
    return int(mb * 2**20)


def code_version(fn) -> str:
    """What the code of a statistic is: the source of the module `fn` lives in (or fn's own code
    when it has no file), of every goodhart.eval module (the statistics it calls) and numpy's
    version. A cached statistic made by other code is another statistic: an edit of fn's module
    or anywhere in eval/ recomputes it. scipy's version too: its special functions (the Student-t
    quantiles of eval/tails.py's reference) are part of what made a result."""
    import marshal
    import sys

    import scipy  # (the package alone: its modules load lazily)

    module = sys.modules.get(fn.__module__)
    path = getattr(module, "__file__", None)
    own = _file_digest(path) if path else marshal.dumps(fn.__code__)
    versions = [np.__version__, scipy.__version__]
    return short_hash([_eval_digest(), *versions, own.hex() if isinstance(own, bytes) else own], n=16)


@functools.cache
def _file_digest(path: str) -> str:
    import hashlib
    from pathlib import Path

    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return f"unreadable {path}"


@functools.cache
def _eval_digest() -> str:
    from pathlib import Path

    import goodhart.eval as ev

    folder = Path(ev.__file__).parent
    return short_hash([(f.name, _file_digest(str(f))) for f in sorted(folder.glob("*.py"))])


def pool_memo(fn, *arrays: np.ndarray, **kw):
    """fn(*arrays, **kw), computed once for the same array contents: what depends on the base pool
    only (the alarm's base statistics and light-tailed null, best-of-2's share) is the same for
    every knob of a curve. Two layers:

    * this process's memory (the points of a curve that one process runs);
    * the disk, $GOODHART_CACHE/stats/ (every process: a sweep's workers, the next sweep): one
      file per result, named by a hash of everything that made it: the arrays' bytes, shapes and
      dtypes, kw (the rule's parameters), the function's name and its code (code_version).
      Written atomically, mapped by readers (the pages are shared), bounded by
      GOODHART_STATS_CACHE_MB (least recently used first). Of two processes that miss together,
      one computes while the other waits for its file.

    The cached object is shared (its arrays are read-only), so nothing may mutate it."""
    ids = tuple(_ident(a) for a in arrays)
    key = (fn.__module__, fn.__qualname__, *ids, tuple(sorted(kw.items())))
    if key in _MEMO:
        _MEMO[key] = _MEMO.pop(key)  # most recently used last
        return _MEMO[key][0]
    out = _disk_memo(fn, arrays, ids, kw)
    _MEMO[key] = (out, _nbytes(out))
    while len(_MEMO) > 1 and (sum(n for _, n in _MEMO.values()) > POOL_MEMO_BYTES or len(_MEMO) > POOL_MEMO_ENTRIES):
        _MEMO.pop(next(iter(_MEMO)))
    return out


def _disk_memo(fn, arrays: tuple[np.ndarray, ...], ids: tuple, kw: dict):
    """fn(*arrays, **kw) through the disk cache (pool_memo's second layer)."""
    import os

    from goodhart.pipeline.io import NotATree, evict_lru, file_lock, read_tree, write_tree

    limit = stats_cache_bytes()
    if limit == 0:
        return fn(*arrays, **kw)
    folder = cache_dir() / "stats"
    name = short_hash(
        {
            "fn": f"{fn.__module__}:{fn.__qualname__}",
            "code": code_version(fn),
            "arrays": [list(i) for i in ids],
            "kw": sorted(kw.items()),
        },
        n=32,
    )
    path = folder / f"{fn.__name__.strip('_<>')}-{name}.tree"

    def cached():
        try:
            out = read_tree(path)
        except (OSError, UnreadableFile):  # none yet, evicted, or torn: computed (again)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: the last to be evicted
        return out

    out = cached()
    if out is not None:
        return out
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = file_lock(folder / f".{name}.lock")
        lock.__enter__()
    except OSError:  # a cache that cannot be written: compute here, share nothing
        return fn(*arrays, **kw)
    try:
        out = cached()  # another process may have made it while this one waited
        if out is not None:
            return out
        out = fn(*arrays, **kw)
        try:
            write_tree(path, out)
            evict_lru(folder, limit, keep=path)
        except (NotATree, OSError):  # not storable, or no room: this process keeps its own
            return out
        mapped = cached()  # the mapped copy: its pages are shared, not this process's own
        return out if mapped is None else mapped
    finally:
        lock.__exit__(None, None, None)
        with contextlib.suppress(OSError):
            (folder / f".{name}.lock").unlink()
