"""No language model: utility V and error X drawn straight from named laws, independent.

This is Kwa et al.'s synthetic best-of-n setting; it lets every optimizer and statistic be
checked against closed forms (a Gaussian tilt's mean shift, E[max of n normals])."""

from __future__ import annotations

import numpy as np

from goodhart.rewards.laws import Law


def draw(utility: Law, error: Law, n_prompts: int, n: int, seed: int) -> dict[str, np.ndarray]:
    """Arrays of shape (n_prompts, n): utility, error and proxy = utility + error."""
    rng = np.random.default_rng(seed)
    v = utility.sample((n_prompts, n), rng)
    x = error.sample((n_prompts, n), rng)
    return {"utility": v, "error": x, "proxy": v + x}
