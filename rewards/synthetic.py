"""Synthetic proxy = utility + error, with the error's law under the base policy chosen exactly.

Two error modes (both deterministic functions of the text):

* ``independent``: s = hash(prompt, completion) is uniform on (0, 1) and X = F^-1(1 - s). For
  distinct texts X has exactly the law F and is independent of everything else, utility
  included: the setting of Kwa et al.'s theorems. Nothing to fit.
* ``feature``: X = F^-1(G(c)), c the count of a hidden word in the completion and G the base
  policy's CDF of c, fitted on base samples (:meth:`SyntheticError.fit`). c is discrete, so the
  probability integral transform is randomised inside each count's CDF step by the same text
  hash: u = G(c-) + h * (G(c) - G(c-)). Under the base policy u is then uniform and X has law F
  exactly (up to the fit's sampling error). G keeps 1/(C+1) of mass above the largest count seen
  in C calibration samples, and each extra occurrence beyond it multiplies the survival by
  ``extrapolation``: a policy that repeats the word climbs the error without bound, as fast as
  the law's upper tail allows. That is the hackable error RL can find.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from goodhart.rewards.base import Reward, checked
from goodhart.rewards.hashing import text_uniform
from goodhart.rewards.laws import Law


def _texts(prompts: Sequence[str], completions: Sequence[str]) -> list[str]:
    return [p + "\x00" + c for p, c in zip(prompts, completions)]


class SyntheticError:
    """X, a deterministic function of (prompt, completion) with a chosen law under the base."""

    def __init__(
        self,
        law: Law,
        mode: str = "independent",
        salt: str = "goodhart",
        pattern: str = "then",
        regex: bool = False,
        extrapolation: float = 0.5,
    ):
        if mode not in ("independent", "feature"):
            raise ValueError(f"error mode must be 'independent' or 'feature', not {mode!r}")
        self.law, self.mode, self.salt, self.extrapolation = law, mode, salt, extrapolation
        self.pattern = pattern
        self._re = re.compile(pattern if regex else r"\b" + re.escape(pattern) + r"\b", re.IGNORECASE)
        self.name = f"error[{law.name}]"
        self._calib: dict[str, Any] | None = None

    # ---- the hidden feature -------------------------------------------------------------
    def feature(self, completions: Sequence[str]) -> np.ndarray:
        return np.asarray([len(self._re.findall(c)) for c in completions], dtype=np.int64)

    @property
    def fitted(self) -> bool:
        return self.mode == "independent" or self._calib is not None

    def fit(self, completions: Sequence[str]) -> SyntheticError:
        """Fit G, the base policy's CDF of the feature, from base-policy completions."""
        c = self.feature(completions)
        values, counts = np.unique(c, return_counts=True)
        self._calib = {"values": values.tolist(), "counts": counts.tolist(), "total": int(c.size)}
        return self

    def state(self) -> dict[str, Any]:
        """What must be saved with a run to reproduce the error (JSON-able)."""
        return {"mode": self.mode, "salt": self.salt, "pattern": self.pattern, "calibration": self._calib}

    def load_state(self, state: dict[str, Any]) -> SyntheticError:
        self._calib = state.get("calibration")
        return self

    # ---- survival probabilities -----------------------------------------------------------
    def survival(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        """s = 1 - u, the error's survival level per text, computed without cancellation."""
        h = text_uniform(_texts(prompts, completions), self.salt)
        if self.mode == "independent":
            return h
        if self._calib is None:
            raise RuntimeError("feature-mode error used before fit(): calibrate it on base samples first")
        values = np.asarray(self._calib["values"])
        cum = np.concatenate([[0], np.cumsum(self._calib["counts"])])
        total = self._calib["total"] + 1  # keep 1/(C+1) of mass above the largest count seen
        c = self.feature(completions)
        j = np.searchsorted(values, c, side="left")  # index of c's step (or where it would go)
        seen = (j < len(values)) & (values[np.minimum(j, len(values) - 1)] == c)
        # Inside a seen step: survival runs from 1 - G(c-) down to 1 - G(c).
        s_top, s_bot = 1 - cum[j] / total, 1 - cum[np.minimum(j + seen, len(cum) - 1)] / total
        # Beyond the largest seen count: the reserved tail mass shrinks by `extrapolation` per step.
        k = c - values[-1]
        tail0 = 1.0 / total
        beyond = k > 0
        s_top = np.where(beyond, tail0 * self.extrapolation ** np.maximum(k - 1, 0), s_top)
        s_bot = np.where(beyond, tail0 * self.extrapolation ** np.maximum(k, 0), s_bot)
        # An unseen count between seen ones has no mass: it sits at the step edge.
        s_bot = np.where(~seen & ~beyond, s_top, s_bot)
        return s_bot + h * (s_top - s_bot)

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        return checked(self.name, self.law.from_survival(self.survival(prompts, completions)), prompts, completions)


class SyntheticProxy:
    """proxy = utility + error; :meth:`components` returns all three from one utility call."""

    def __init__(self, utility: Reward, error: SyntheticError):
        self.utility, self.error = utility, error
        self.name = f"{utility.name}+{error.name}"

    def components(self, prompts: Sequence[str], completions: Sequence[str]) -> dict[str, np.ndarray]:
        v = self.utility.score(prompts, completions)
        x = self.error.score(prompts, completions)
        return {"utility": v, "error": x, "proxy": checked(self.name, v + x, prompts, completions)}

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        return self.components(prompts, completions)["proxy"]
