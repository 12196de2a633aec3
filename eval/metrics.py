"""The one table of metric names. Every logger, results table and report uses these.

Names are MLflow-safe (letters, digits, ``_ - . /`` and spaces only). A result row holds the
point estimate under the name, and its bootstrap interval under ``<name>/lo`` and ``<name>/hi``.
"""

from __future__ import annotations

import re

# ---- rewards -----------------------------------------------------------------------------
PROXY = "reward/proxy"  # mean proxy reward U = V + X under the policy
UTILITY = "reward/utility"  # mean true utility V under the policy
ERROR = "reward/error"  # mean proxy - utility
GAIN_PROXY = "gain/proxy"  # PROXY minus the base policy's, paired per prompt
GAIN_UTILITY = "gain/utility"  # UTILITY minus the base policy's, paired per prompt
BASE_PROXY = "base/proxy"  # mean proxy under the base policy (same prompts)
BASE_UTILITY = "base/utility"  # mean utility under the base policy
ERROR_UTILITY_CORR = "base/error_utility_corr"  # Pearson corr(error, utility) under the base

# ---- KL to the base policy ----------------------------------------------------------------
KL = "kl"  # sequence-level KL(pi || pi_0) in nats; the estimator is in KL_ESTIMATOR
KL_ESTIMATOR = "kl_estimator"  # param/column: which estimator produced KL
KL_K1 = "kl/k1"  # per-token mean of k1 = log pi - log pi_0 (trained runs)
KL_K3 = "kl/k3"  # per-token mean of k3 = exp(-r) - 1 + r (trained runs)
KL_BOUND = "kl/bound"  # best-of-n analytic bound log n - (n-1)/n
KL_MAX = "kl/max"  # the most a pool of N samples can show: log N
KL_COEF = "kl/coef"  # the KL coefficient (config algo.kl.coef; tilt's beta; the one this step's rewards used)
KL_TARGET = "kl/target"  # matched KL: the KL the point's coefficient was solved for on its pool (eval/matched.py)
KL_AT_LIMIT = "kl/at_limit"  # matched KL: fraction of prompts whose target is at or past the argmax's KL (coef 0)
X_KL_COEF = "kl.coef"  # column x_name of a point placed on the KL axis by its KL coefficient (the config key)

# ---- optimizer diagnostics ----------------------------------------------------------------
TILT_ESS = "tilt/ess"  # effective sample size 1 / sum w^2, mean over prompts
TILT_ESS_MIN = "tilt/ess_min"  # worst prompt's ESS
TILT_ESS_OK = "ess_ok"  # column: worst-prompt ESS >= eval.min_ess (False: the tilt estimate rests on few samples)
BON_N = "bon/n"
BON_TIED = "bon/tied"  # mean fraction of pool samples whose proxy ties another (> 0: KL from the pool, not the bound)
ENTROPY = "policy/entropy"
N_PROMPTS = "n/prompts"
CI_LEVEL = "ci_level"  # column: the level of the row's <name>/lo, /hi intervals (config eval.ci; absent: 0.95)
EXACT = "is_exact"  # column: True when the row's numbers are the quantities themselves (computed, not sampled)
INTERVAL_METHOD = "interval_method"  # column: how <name>/lo and /hi were made (t | bootstrap | none)
TILT_DRIFT_PROXY = "tilt/drift/proxy"  # tilt: estimate on the pool N minus on its nested sub-pool N/4 (proxy)
TILT_DRIFT_UTILITY = "tilt/drift/utility"  # ... the same for the utility
TILT_POOL_BIAS = "tilt/pool_bias"  # jackknife estimate of the pool optimum minus the population optimum (utility)
TILT_POOL_BIAS_SE = "tilt/pool_bias_se"  # its standard error over prompts
POOL_DEPENDENT = "pool_dependent"  # column: the tilt estimate drifts with the pool size beyond its interval
BASE_SHARE2 = "base/share2"  # utility share of the proxy gain of best-of-2 on the base pool (the gentlest pressure)
BASE_GAIN2 = "base/gain2"  # utility gain of best-of-2 on the base pool (/lo, /hi over prompts): near-base floor
N_SAMPLES = "n/samples"  # samples per prompt (the pool N, or M held-out samples)

# ---- the held-out proxy (eval.holdout; eval/holdout.py): a second proxy R2 = V + X2, no gold read ----
HOLDOUT = "reward/holdout"  # mean held-out proxy R2 under the policy (members combined per sample)
GAIN_HOLDOUT = (
    "gain/holdout"  # HOLDOUT minus the base policy's, paired per prompt: the utility gain estimated without gold
)
BASE_HOLDOUT = "base/holdout"  # mean held-out proxy under the base policy (same prompts)
HOLDOUT_ERROR_GAIN = "holdout/error_gain"  # gain/proxy - gain/holdout: the optimized proxy's error gain, estimated
HOLDOUT_K = "holdout/k"  # held-out members combined per sample (independent draws or reward models)
HOLDOUT_SOURCE = "holdout/source"  # column: which held-out proxy (its law and salt or stream, or its rewards' identity)
HOLDOUT_BASE_GAIN2 = "holdout/base_gain2"  # held-out gain of best-of-2 by proxy on the base pool (/lo, /hi): the estimate's near-base floor
HOLDOUT_POOL_DEPENDENT = (
    "holdout/pool_dependent"  # column: tilt, the held-out estimate (or the proxy) drifts with the pool size
)
HOLDOUT_BASE_SHARE2 = "holdout/base_share2"  # holdout/base_gain2 over best-of-2's proxy gain: the estimate's share0

# ---- training ---------------------------------------------------------------------------
LOSS_POLICY = "train/loss/policy"
LOSS_VALUE = "train/loss/value"
LOSS_TOTAL = "train/loss/total"
CLIPFRAC = "train/clipfrac"  # fraction of completion tokens whose PPO ratio was clipped
VALUE_CLIPFRAC = "train/value_clipfrac"  # fraction of tokens whose value update was clipped
APPROX_KL = "train/approx_kl"  # per-token k3 KL(pi_old || pi_new) of one update: the PPO step size, NOT the KL to base
GRAD_NORM = "train/grad_norm"  # gradient norm before clipping, mean over minibatches
OBJECTIVE = "train/objective"  # mean proxy - beta * sequence KL on the training batch: what PPO maximizes
TRAIN_STEPS = "train/steps"  # optimizer iterations completed (result rows of trained points)
RESUMED_FROM = "train/resumed_from"  # step of the checkpoint a run resumed from (0: fresh start)
TRAIN_ROUNDS = "train/rounds"  # bon-ft: sample-select-tune rounds completed (result rows; RESUMED_FROM counts rounds)
STEP_SECONDS = "time/step_s"  # wall seconds of one training step (bon-ft: of one round)
LENGTH = "policy/length"  # mean completion length in tokens, EOS included
REWARD_CLIPPED = "reward/clipped_fraction"  # fraction of proxies clipped (only when `clip` is set)
KL_TARGET = "train/kl_target"  # adaptive KL controller's target sequence KL (only when adaptive)
KL_REWARD_ESTIMATOR = "train/kl_estimator"  # column: per-token estimator in the training reward (k1|k3)
KL_CLAMPED = (
    "kl/clamped_fraction"  # fraction of per-token KL terms clamped in the reward (only when algo.kl.clamp is set)
)
LEARNING_RATE = "train/lr"  # optimizer learning rate at this step
LOSS_SFT = "train/loss/sft"  # bon-ft: mean NLL of the kept completions' tokens (prompt masked)
LOSS_KL = "train/loss/kl"  # bon-ft: mean exact per-token KL(pi || pi_0) on the tuned prefixes (before kl_coef)
KEPT_PROXY = "bonft/kept/proxy"  # bon-ft: mean proxy of the round's kept (best-of-n) samples
KEPT_UTILITY = "bonft/kept/utility"  # bon-ft: mean utility of the round's kept samples

# ---- the Goodhart alarm (eval/alarm.py): proxy, KL and base-pool proxy only, never utility ----
ALARM_SCORE = "alarm/score"  # tail_share / share when the local tail test rejects, else 0: >= 1 alarm
ALARM_LEVEL = "alarm/level"  # column: quiet | watch | alarm
ALARM_CODE = "alarm/code"  # the level as a number for MLflow: 0 quiet, 1 watch, 2 alarm
ALARM_DV_RATIO = "alarm/dv_ratio"  # proxy gain / Donsker-Varadhan bound of the base bulk at this KL
ALARM_DV_BOUND = "alarm/dv_bound"  # sigma_bulk * sqrt(2 KL): the most gain a Gaussian bulk gives at this KL
ALARM_SIGMA = "alarm/sigma_bulk"  # sub-Gaussian sigma of the base proxy read from central quantiles
ALARM_TOP_SHARE = "alarm/top1_share"  # share of the proxy gain carried by the top 1% of the policy's mass
ALARM_BEYOND_MAX = (
    "alarm/beyond_max"  # policy mass above the base pool's largest proxy, minus a bulk-Gaussian policy's at this KL
)
ALARM_DISAGREEMENT = "alarm/disagreement"  # relative spread of standardized gains over reward models (if several)
ALARM_N_EFF = "alarm/n_eff"  # effective number of policy samples behind the evidence (1 / sum of squared masses)
ALARM_P = "alarm/p_value"  # p-value of the proxy gain under the light-tailed null (eval/alarm_null.py)
ALARM_EXCESS = "alarm/excess"  # share of the gain beyond the null's (1 - alpha) quantile (> 0 iff p < alpha)
ALARM_TAIL_SHARE = "alarm/tail_share"  # share of the gain carried by samples beyond the bulk's 0.9 quantile
ALARM_ME_SLOPE = "alarm/me_slope"  # base proxy's mean-excess slope over its top 10% (0 exponential, > 0 power tail)
ALARM_TAIL_P = "alarm/tail_p"  # p-value of that slope under the light-tailed null (one per pool: watch at most)
ALARM_NULL_GAIN = "alarm/null_gain"  # median null gain (same optimizer) or the null's DV bound at this KL
ALARM_NOISE_P = "alarm/noise_p"  # samples only: p of the gain against the base policy's own batch gains (same shape)
ALARM_LOCAL_P = (
    "alarm/local_p"  # local tail test: is the base tail heavier than exponential where the point buys its gain?
)
ALARM_LOCAL_RATIO = (
    "alarm/local_ratio"  # its statistic: normalized spacings, deeper half / shallower half (1 exponential)
)
ALARM_DEPTH = "alarm/depth"  # share of the base pool above the policy's median mass (best-of-n: ~0.69 / n)
ALARM_TEST = "alarm/test"  # column: which null test decided (same optimizer on the null | null DV bound)
ALARM_VERSION = "alarm/version"  # the alarm rule a row's alarm was computed under (eval/alarm.py VERSION)
ALARM_RULE = "alarm/rule"  # column: the rule's keys the alarm was computed under (AlarmRule.key(): alpha=...)
ALARM_STOPPED = "alarm/stopped_at"  # training step where algo.stop_on_alarm stopped the run (result rows)
ALARM_KEPT = "alarm/kept_step"  # step of the last quiet policy kept after a stop (result rows)

# ---- learned reward models (`goodhart train-rm`) ------------------------------------------
RM_TRAIN_LOSS = "rm/train/loss"  # Bradley-Terry loss -log sigmoid(r_chosen - r_rejected) (+ TRL's centering term)
RM_TRAIN_ACCURACY = "rm/train/accuracy"  # fraction of the step's pairs with r_chosen > r_rejected (noisy labels)
RM_TRAIN_MARGIN = "rm/train/margin"  # mean r_chosen - r_rejected over the step's pairs
RM_HELDOUT_ACCURACY = "rm/heldout/accuracy"  # held-out within-prompt pairs ordered as gold orders them
RM_HELDOUT_PEARSON = "rm/heldout/pearson"  # Pearson corr(rm, gold) over held-out samples
RM_HELDOUT_SPEARMAN = "rm/heldout/spearman"  # Spearman corr(rm, gold) over held-out samples
RM_HELDOUT_PAIRS = "rm/heldout/pairs"  # held-out pairs with distinct gold behind the accuracy

# ---- TRL's own figures (rloo, grpo): logged beside ours, never in place of them ---------------
TRL_PREFIX = "trl/"  # every TRL log key without a name of ours above is logged as trl/<key>
TRL_KL = "trl/kl"  # TRL's per-token KL of the training batch: GRPO k3 (times the IS ratio) as in its loss,
#                    RLOO mean k1 whose sequence sum is subtracted from the reward. NOT our `kl`.
TRL_VERSION = "trl_version"  # column: the TRL release that trained the point

# ---- curve identity (string columns): points sharing all five are one curve along KL -----------
CURVE_UTILITY = "curve/utility"  # the true utility: law and scale, or a reward's identity (path + weights hash, ...)
CURVE_PROXY = "curve/proxy"  # the proxy the optimizer saw (utility + error law, or a reward's identity)
CURVE_MODEL = "curve/model"  # the base policy (and its sampling settings)
CURVE_PROMPTS = "curve/prompts"  # eval prompts: source, count, split seed
CURVE_POOL = "curve/pool"  # base samples per prompt N
CURVE_KEYS = (CURVE_UTILITY, CURVE_PROXY, CURVE_MODEL, CURVE_PROMPTS, CURVE_POOL)

# ---- MLflow namespaces: a point's final evaluated numbers apart from its per-step curves -------
EVAL_NS = "eval/"  # the result row (what results.csv holds), logged once at the last step
TRAIN_NS = "train/"  # per-step training metrics (the training batch's proxy, KL, losses, ...)

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-./ ]")


# Names older results were written with -> the names above (a results.csv from before the
# rename still reports: current_names maps it on reading).
RENAMED = {"train/kl_coef": KL_COEF, "tilt/beta": KL_COEF}
RENAMED_X = {"beta": X_KL_COEF}
KNOB_WORDS = {"beta": "kl.coef", "kl_target": "kl.target", "n": "n"}  # x_name -> the config key (beta: older results)


def knob_label(x_name: str, x: float) -> str:
    """`n=64`, `kl.coef=0.03`, `kl.target=2`: the knob as the config spells it (tables, run
    names and the verdicts' sentences say it one way)."""
    word = KNOB_WORDS.get(x_name, x_name)
    return f"{word}={int(x)}" if x_name == "n" else f"{word}={x:g}"


def current_names(df):
    """A results table (pandas) with the metric names and x_name values of today: old columns
    renamed (two old names of one metric merged, first non-empty value wins), old x_names mapped."""
    df = df.copy()
    for old, new in RENAMED.items():
        if old in df:
            df[new] = df[new].combine_first(df[old]) if new in df else df[old]
            df = df.drop(columns=old)
    if "x_name" in df:
        df["x_name"] = df["x_name"].replace(RENAMED_X)
    return df


def lo(name: str) -> str:
    return f"{name}/lo"


def hi(name: str) -> str:
    return f"{name}/hi"


def eval_name(name: str) -> str:
    """The MLflow name of a result-row value: `eval/<name>` (`eval/kl`, `eval/reward/proxy`)."""
    return EVAL_NS + name


def train_name(name: str) -> str:
    """The MLflow name of a per-step value: `train/<name>`; names already under train/ stay."""
    return name if name.startswith(TRAIN_NS) else TRAIN_NS + name


def sanitize(key: str) -> str:
    """Make any key MLflow-safe: characters MLflow rejects (``( ) @ [ ] ,`` ...) become ``_``."""
    return _UNSAFE.sub("_", key)


# ---- reward-model tail probe (`goodhart probe`; one MLflow run per mode) ----------------------
PROBE_N = "probe/n"  # sequences scored (random, base)
PROBE_MEAN = "probe/reward/mean"  # mean reward of the scored sequences
PROBE_STD = "probe/reward/std"
PROBE_Q99 = "probe/reward/q99"
PROBE_Q999 = "probe/reward/q999"
PROBE_MAX = "probe/reward/max"
PROBE_HILL = "probe/tail/hill_gamma"  # Hill gamma at the stable k (reported, not used by the verdict)
PROBE_GPD_XI = "probe/tail/gpd_xi"  # GPD shape above the 0.95 quantile
PROBE_QQ_GROWTH = "probe/tail/qq_growth"  # db/du of the exponential Q-Q slope (the verdict's trend)
PROBE_BEST = "probe/best/reward"  # optimize: the best reward reached (text path)
PROBE_BEST_Z = "probe/best/z"  # optimize: (best - base mean) / base std, in base std devs
PROBE_BEST_LOGPROB = "probe/best/base_logprob"  # optimize: log pi_0(y* | prompt), nats
PROBE_RANDOM_MAX = "probe/random_same_budget/max"  # optimize: best of as many uniform random sequences
PROBE_SCORED = "probe/search/scored"  # optimize: candidate sequences scored
PROBE_CANDIDATES_PER_S = "probe/search/candidates_per_s"  # optimize: batched scoring throughput
PROBE_SEARCH_BEST = "probe/search/best"  # optimize, per step (restarts in sequence): best token-level reward so far


def probe_mix(what: str, p: float) -> str:
    """optimize: `kl` or `gain` of the mixture (1 - p) pi_0 + p delta_{y*}, e.g. probe/mix/kl/p0.01."""
    return f"probe/mix/{what}/p{p:g}"


# ---- goodhart.integrations (a user's own trainer: TRL's GRPO / RLOO callback) ---------------
INTEGRATION_NS = "goodhart/"  # every metric the callback adds to the trainer's logs starts with this
INTEGRATION_PROXY = "goodhart/proxy"  # mean proxy (weighted sum of the wrapped rewards) of the window a check read
INTEGRATION_GOLD = "goodhart/gold"  # mean gold utility of the same samples (only with a gold function)
INTEGRATION_KL = "goodhart/kl"  # the sequence KL the check used: TRL's per-token kl x completions/mean_length
INTEGRATION_SAMPLES = "goodhart/samples"  # samples the check read
INTEGRATION_STOPPED = "goodhart/stopped"  # 1 at the check that stopped training (stop_on_alarm)
INTEGRATION_HOLDOUT = "goodhart/holdout"  # mean held-out proxy of the window's samples (only with holdout= functions)
INTEGRATION_GAIN_HOLDOUT = "goodhart/gain/holdout"  # ... minus the base's (/lo, /hi over the window's prompts): the utility gain estimated without gold


def integration_name(name: str) -> str:
    """An alarm metric (``alarm/score``, ...) as the callback logs it: ``goodhart/alarm/score``."""
    return name if name.startswith(INTEGRATION_NS) else INTEGRATION_NS + name


# ---- the arena: f-divergence optima and reward-side mitigations ---------------------------------
TILT_DIVERGENCE = "tilt/divergence"  # column: which f-divergence regularises the tilt (kl | chi2 | ...)
TILT_DIVERGENCE_VALUE = "tilt/divergence_value"  # D_f(pi || pi_0) = mean(f(w)) exactly on the pool (KL is `kl`)
TILT_DROPPED = "tilt/dropped"  # mean fraction of pool samples the optimum gives weight 0 (chi2 truncation)
REWARD_TRANSFORM = "reward/transform"  # column: the proxy's transform (clip | log_sigmoid | rank), with its level
REWARD_TRANSFORM_REF = "reward/transform_ref"  # the base-pool quantile the transform is anchored at
ENSEMBLE_K = "ensemble/k"  # members of a proxy ensemble
ENSEMBLE_COMBINE = "ensemble/combine"  # column: how members combine (mean | min | uwo)
