"""`rloo`: TRL's RLOO trainer (Ahmadian et al. 2024, "Back to Basics"), fed our proxy.

For a prompt x and its k = num_generations completions y_1..y_k from pi:

    reward     R_i = proxy(x, y_i) - beta * sum_t k1_t(y_i),     k1_t = log pi(y_t|.) - log pi_0(y_t|.)
    baseline   b_i = 1/(k-1) * sum_{j != i} R_j                  (leave-one-out)
    loss       -E_i min(rho_i A_i, clip(rho_i, 1-eps, 1+eps) A_i),  A_i = R_i - b_i,  rho_i = pi(y_i)/pi_old(y_i) per sequence

The KL term is TRL's (sequence-summed k1 in the reward, with pi_0 = the base model); TRL logs its
per-token mean as `trl/kl`. The point's `kl` is ours, measured after training on held-out
samples (goodhart.pipeline.train.kl). Glue, metric names, checkpoints: pipeline/optimizers/trl_common.py.
"""

from __future__ import annotations

from goodhart.pipeline.base.context import PointContext
from goodhart.pipeline.base.measure import PointOutput
from goodhart.pipeline.optimizers.trl_common import run_trl


def run(ctx: PointContext) -> PointOutput:
    from trl import RLOOConfig, RLOOTrainer

    algo = ctx.cfg.algo
    specific = dict(
        normalize_advantages=algo.normalize_advantages,
        reward_clip_range=None,  # never clip the proxy inside TRL (our `clip:` is the one switch)
    )
    return run_trl(ctx, RLOOTrainer, RLOOConfig, specific)
