"""`grpo`: TRL's GRPO trainer (Shao et al. 2024, DeepSeekMath), fed our proxy.

For a prompt x and its G = num_generations completions y_1..y_G from pi:

    advantage  A_i = (proxy_i - mean_j proxy_j) / s          s: group std, batch std or 1 (scale_rewards)
    loss       -min(rho_t A_i, clip(rho_t, 1-eps, 1+eps) A_i) + beta * k3_t,   per token t of y_i
               rho_t = pi(y_t|.)/pi_old(y_t|.),   k3_t = exp(-r_t) - 1 + r_t,  r_t = log pi(y_t|.) - log pi_0(y_t|.)
               (TRL 1.16 multiplies k3_t by rho_t: its default bias correction), averaged per loss_type

The KL is in the loss, not the reward, and only when beta > 0 (TRL's own default is 0: we pass
algo.kl.coef explicitly). TRL logs the per-token k3 as `trl/kl`; at beta = 0 it logs none. The
point's `kl` is ours, measured after training on held-out samples (goodhart.pipeline.train.kl) whatever beta is.
Glue, metric names, checkpoints: pipeline/optimizers/trl_common.py.
"""

from __future__ import annotations

from goodhart.pipeline.base.context import PointContext
from goodhart.pipeline.base.measure import PointOutput
from goodhart.pipeline.optimizers.trl_common import run_trl


def run(ctx: PointContext) -> PointOutput:
    from trl import GRPOConfig, GRPOTrainer

    algo = ctx.cfg.algo
    specific = dict(
        loss_type=algo.loss_type,
        scale_rewards=algo.scale_rewards,
        multi_objective_aggregation="sum_then_normalize",  # weights first: the utility's weight 0 stays 0
        importance_sampling_level="token",
        # nothing masked, capped or mixed in beyond the PPO-style ratio clip
        delta=None,
        off_policy_mask_threshold=None,
        top_entropy_quantile=1.0,
        entropy_coef=0.0,
    )
    return run_trl(ctx, GRPOTrainer, GRPOConfig, specific)
