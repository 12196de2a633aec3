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

# ---- optimizer diagnostics ----------------------------------------------------------------
TILT_ESS = "tilt/ess"  # effective sample size 1 / sum w^2, mean over prompts
TILT_ESS_MIN = "tilt/ess_min"  # worst prompt's ESS
TILT_BETA = "tilt/beta"
BON_N = "bon/n"
ENTROPY = "policy/entropy"
N_PROMPTS = "n/prompts"
N_SAMPLES = "n/samples"  # samples per prompt (the pool N, or M held-out samples)

# ---- training ---------------------------------------------------------------------------
LOSS_POLICY = "train/loss/policy"
LOSS_VALUE = "train/loss/value"
LOSS_TOTAL = "train/loss/total"
KL_COEF = "train/kl_coef"  # the KL coefficient beta used for this step's rewards
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

INTERVAL_SUFFIXES = ("lo", "hi")
WITH_INTERVALS = (PROXY, UTILITY, GAIN_PROXY, GAIN_UTILITY, KL)

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-./ ]")


def lo(name: str) -> str:
    return f"{name}/lo"


def hi(name: str) -> str:
    return f"{name}/hi"


def sanitize(key: str) -> str:
    """Make any key MLflow-safe: characters MLflow rejects (``( ) @ [ ] ,`` ...) become ``_``."""
    return _UNSAFE.sub("_", key)
