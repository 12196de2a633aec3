"""Reward-model tail probe (`goodhart probe`): how far a reward's tail reaches, by scoring
uniform random token sequences and base-model completions (tail diagnostics, plots) and by
coordinate-gradient search over input tokens (ACG) for differentiable HF rewards, with the
KL/reward trade-off of mixing the optimized sequence into the base policy. Imports the rooms
below it (optimizers, train, base, config), the rewards package and eval; never sweeps or cli."""
