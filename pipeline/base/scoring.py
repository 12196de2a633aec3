"""From reward configs to reward objects, and one `Scorer` that gives proxy, utility and error.

This is the only place that maps config classes to the rewards package, so `rewards/` never
imports the config.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from goodhart.pipeline.config import schema as C
from goodhart.rewards.base import Reward
from goodhart.rewards.compose import Clipped, WeightedSum
from goodhart.rewards.gold import Keyword, Length, Sentiment
from goodhart.rewards.laws import Law
from goodhart.rewards.plugins import HFClassifierReward, callable_reward, plugin_reward
from goodhart.rewards.synthetic import SyntheticError, SyntheticProxy


def law(cfg: C.LawConfig) -> Law:
    return Law(**cfg.model_dump())  # the same fields (tests/test_config.py)


def synthetic_error(cfg: C.ErrorConfig) -> SyntheticError:
    f = cfg.feature
    return SyntheticError(law(cfg.law), cfg.mode, cfg.salt, f.pattern, f.regex, f.extrapolation)


def build_reward(spec: C.RewardSpec) -> Reward:
    """One reward object per config node (recursively for sums and synthetic proxies)."""
    match spec:
        case C.SentimentReward():
            return Sentiment(include_prompt=spec.include_prompt)
        case C.LengthReward():
            return Length(spec.unit)
        case C.KeywordReward():
            return Keyword(spec.words, spec.case_sensitive)
        case C.HFReward():
            return HFClassifierReward(
                spec.path,
                spec.label,
                spec.batch_size,
                spec.max_length,
                spec.device,
                spec.include_prompt,
                dtype=spec.dtype,
                revision=spec.revision,
                trust_remote_code=spec.trust_remote_code,
            )
        case C.CallableReward():
            return callable_reward(spec.target, spec.kwargs)
        case C.PluginReward():
            return plugin_reward(spec.name, spec.kwargs)
        case C.SyntheticReward() if spec.ensemble is not None:
            from goodhart.rewards.ensemble import SyntheticEnsemble, member_salt

            def field(j: int | str) -> SyntheticError:
                return synthetic_error(spec.error.model_copy(update={"salt": member_salt(spec.error.salt, j)}))

            e = spec.ensemble
            shared = field("shared") if e.rho > 0 else None
            errs = [field(j) for j in range(e.k)]
            return SyntheticEnsemble(build_reward(spec.utility), errs, e.combine, e.lam, shared, e.rho)
        case C.SyntheticReward():
            return SyntheticProxy(build_reward(spec.utility), synthetic_error(spec.error))
        case C.SumReward():
            return WeightedSum([build_reward(t) for t in spec.terms], spec.weights)
        case C.EnsembleReward():
            from goodhart.rewards.ensemble import RewardEnsemble

            if len(spec.members) == 1:  # one reward model (under the spec's transform): no combining
                return build_reward(spec.members[0])
            return RewardEnsemble([build_reward(m) for m in spec.members], spec.combine, spec.lam)
        case C.DistributionalReward():
            raise ValueError("a distributional reward draws numbers, it does not score text")
    raise TypeError(f"unknown reward config {type(spec).__name__}")


class Scorer:
    """Scores completions with the run's proxy and its true utility in one pass.

    A synthetic proxy's utility is scored once and reused; a separate `utility:` config is
    scored separately. `error` is proxy - utility whatever the proxy is."""

    def __init__(self, cfg: C.RunConfig):
        from goodhart.rewards.ensemble import SyntheticEnsemble

        self.proxy = build_reward(cfg.reward)
        self.synthetic = self.proxy if isinstance(self.proxy, SyntheticProxy | SyntheticEnsemble) else None
        self.transform = proxy_transform(cfg.reward)
        # `utility: same` (a copy of the proxy's config): the proxy's own scores, not a second
        # model scoring everything again (it halved an hf reward's throughput).
        self._utility_is_proxy = cfg.utility is not None and cfg.utility == cfg.reward
        if self._utility_is_proxy:
            self.utility = self.proxy
            self._utility_from_proxy = False
        elif cfg.utility is not None:
            self.utility: Reward = build_reward(cfg.utility)
            self._utility_from_proxy = False
        else:
            self.utility = self.synthetic.utility if self.synthetic else self.proxy
            self._utility_from_proxy = True
        self.clip = Clipped(self.proxy, cfg.clip.low, cfg.clip.high) if cfg.clip else None

    @property
    def error(self) -> SyntheticError | None:
        return self.synthetic.error if self.synthetic else None

    @property
    def errors(self) -> list[SyntheticError]:
        """Every synthetic error field (an ensemble has one per member, and its shared one)."""
        return list(getattr(self.synthetic, "fields", [self.error] if self.error is not None else []))

    def needs_calibration(self) -> bool:
        """A feature-mode error whose CDF has not been fitted on base samples yet (or a proxy
        transform not yet anchored at base rewards)."""
        return (self.error is not None and not self.error.fitted) or (
            self.transform is not None and not self.transform.fitted
        )

    def raw_proxy(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        """The proxy before its transform (what the transform is fitted on)."""
        return self.proxy.score(prompts, completions)

    def components(self, prompts: Sequence[str], completions: Sequence[str]) -> dict[str, np.ndarray]:
        members = None
        if self.synthetic is not None:
            parts = self.synthetic.components(prompts, completions)
            proxy, utility, members = parts["proxy"], parts["utility"], parts.get("members")
        elif hasattr(self.proxy, "members"):  # a learned ensemble (rewards/ensemble.py RewardEnsemble)
            parts = self.proxy.components(prompts, completions)
            proxy, members = parts["proxy"], parts["members"]
            utility = proxy if self._utility_from_proxy else None
        else:
            proxy = self.proxy.score(prompts, completions)
            utility = proxy if self._utility_from_proxy else None
        if self._utility_is_proxy:
            utility = proxy  # unclipped, as a separate scoring of the same reward gave
        elif not self._utility_from_proxy or utility is None:
            utility = self.utility.score(prompts, completions)
        if self.transform is not None:
            proxy = self.transform(proxy)
        if self.clip is not None:
            proxy = self.clip.clip(proxy)
        out = {"proxy": proxy, "utility": utility, "error": proxy - utility}
        if members is not None:
            out["members"] = members
        return out


def proxy_transform(spec: C.RewardSpec):
    """The (unfitted) transform a synthetic or distributional proxy names, else None."""
    t = getattr(spec, "transform", None)
    if t is None:
        return None
    from goodhart.rewards.transform import Transform

    return Transform(t.kind, t.quantile, t.scale)
