"""Per-prompt gains of a sweep's points, as the verdicts pair them (points/<id>/per_prompt.npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def load_units(root: Path, df: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """Per-prompt gains of every point that saved them (points/<id>/per_prompt.npz): proxy, utility
    and, with a held-out proxy, its gain (`gain_holdout`)."""
    units = {}
    for pid in df.get("point_id", pd.Series(dtype=str)).dropna():
        f = root / "points" / str(pid) / "per_prompt.npz"
        if f.is_file():
            z = np.load(f)
            units[str(pid)] = {
                "gain_proxy": z["proxy"] - z["base_proxy"],
                "gain_utility": z["utility"] - z["base_utility"],
            }
            if "holdout" in z:  # the held-out proxy's gain (eval.holdout): what the estimated labels pair
                units[str(pid)]["gain_holdout"] = z["holdout"] - z["base_holdout"]
    return units
