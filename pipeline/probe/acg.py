"""ACG: coordinate-gradient search for the input tokens that maximize a reward.

GCG (Zou et al. 2023) and its accelerated variant ACG (Haize Labs 2024; used by Kwa et al. to
push reward models to their top) in five lines per step:

    g      = d r(x) / d onehot(x)                           (L, V): one forward + backward
    top    = top-k tokens of g per position                 (L, k)
    cands  = B copies of x, each with m random positions set to a random token of their top-k
    x      = argmax_{c in cands} r(c)                       B forwards, batched; taken even if
                                                            worse than x (the best ever is kept)
    m      = edits_start -> edits_end, linear in the step   (big moves early, fine moves late)

Restarts run the search again from fresh random sequences. The cost is dominated by the B
reward forwards per step, so candidates scored per second is measured and reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from goodhart.pipeline.probe.config import SearchConfig
from goodhart.pipeline.probe.token_rm import TokenRM
from goodhart.rewards.base import RewardError


def edits_at(step: int, steps: int, start: int, end: int) -> int:
    """Positions changed per candidate at `step` (0-based): linear from start to end."""
    if steps <= 1:
        return start
    return int(round(start + (end - start) * step / (steps - 1)))


@dataclass
class Restart:
    """One search from one initial sequence."""

    ids: list[int]
    reward: float
    text: str
    history: list[float] = field(default_factory=list)  # best reward so far, per step


@dataclass
class SearchResult:
    restarts: list[Restart]
    scored: int  # candidate sequences scored (forwards), all restarts
    seconds: float
    score_seconds: float  # of which in batched candidate scoring
    filtered: int  # candidates dropped because their text does not re-tokenize to them

    @property
    def best(self) -> Restart:
        return max(self.restarts, key=lambda r: r.reward)

    @property
    def candidates_per_s(self) -> float:
        """Candidates scored per second of scoring (the search's dominant cost)."""
        return self.scored / self.score_seconds if self.score_seconds > 0 else float("nan")


def initial_sequence(rm: TokenRM, length: int, generator, round_trip: bool, tries: int = 200):
    """A uniform random sequence; with round_trip, one whose text re-tokenizes to itself
    (random ids rarely do: the canonical tokens of their text, cut or extended to `length`,
    usually do after a try or two)."""
    import torch

    x = rm.random(1, length, generator)
    if not round_trip:
        return x[0]
    for _ in range(tries):
        text = rm.texts(x)[0]
        canon = rm.tok(rm.prompt + text)["input_ids"][len(rm.prefix) :]
        canon = [t for t in canon if rm.allowed[t]][:length]
        if len(canon) < length:  # the text merged into fewer tokens: extend with fresh ones
            extra = rm.random(1, length - len(canon), generator)[0].tolist()
            cand = torch.tensor([canon + extra])
        else:
            cand = torch.tensor([canon])
        if rm.round_trips(cand)[0]:
            return cand[0]
        x = cand
    raise RewardError(
        f"found no {length}-token sequence whose text re-tokenizes to itself in {tries} tries; "
        "set probe.search.retokenize_filter=false to search token ids without the text round trip"
    )


def candidates(x, top, m: int, n: int, generator):
    """n copies of x (L,), each with m distinct random positions set to a random token among
    that position's top-k (top: (L, k))."""
    import torch

    length, k = top.shape
    m = min(m, length)
    pos = torch.rand(n, length, generator=generator).argsort(dim=1)[:, :m]  # (n, m) distinct positions
    pick = torch.randint(0, k, (n, m), generator=generator)  # (n, m) which of the top-k
    out = x.repeat(n, 1)  # (n, L)
    out.scatter_(1, pos, top[pos, pick])
    return out


def acg_search(rm: TokenRM, cfg: SearchConfig, length: int, batch_size: int, progress: bool = True) -> SearchResult:
    """Maximize rm's reward over `length`-token sequences; every restart's best is returned."""
    import torch

    gen = torch.Generator().manual_seed(cfg.seed)
    k = min(cfg.top_k, len(rm.allowed_ids))
    scored, score_s, filtered, t0 = 0, 0.0, 0, time.time()
    restarts = []
    bar = tqdm(total=cfg.steps * cfg.restarts, desc="acg", unit="step", disable=not progress, leave=False)
    for r in range(cfg.restarts):
        x = initial_sequence(rm, length, gen, cfg.retokenize_filter)
        cur = float(rm.score(x[None])[0])
        best_ids, best = x.clone(), cur
        history = []
        for step in range(cfg.steps):
            grad, _ = rm.gradient(x)  # (L, V)
            grad[:, ~rm.allowed.cpu()] = -float("inf")
            top = grad.topk(k, dim=1).indices  # (L, k) tokens that raise r most, to first order
            cands = candidates(x, top, edits_at(step, cfg.steps, cfg.edits_start, cfg.edits_end), cfg.candidates, gen)
            if cfg.retokenize_filter:
                keep = rm.round_trips(cands)
                filtered += int((~keep).sum())
                cands = cands[torch.from_numpy(keep)]
            if len(cands):
                ts = time.time()
                rewards = rm.score(cands, batch_size)
                score_s += time.time() - ts
                scored += len(cands)
                i = int(np.argmax(rewards))
                x, cur = cands[i].clone(), float(rewards[i])  # always move to the best candidate
                if cur > best:
                    best_ids, best = x.clone(), cur
            history.append(best)
            bar.update(1)
            bar.set_postfix(restart=r, best=f"{best:.4g}", now=f"{cur:.4g}")
        restarts.append(Restart(best_ids.tolist(), best, rm.texts(best_ids[None])[0], history))
    bar.close()
    return SearchResult(restarts, scored, time.time() - t0, score_s, filtered)
