"""What theory predicts for each arena cell (docs/arena.md derives every line; tests/test_arena_theory.py
pins each statement). V light (Gaussian), X independent of V; every arena law is unbounded above.

Two statements per (error law, column), both about the pool growing (N -> inf):

* ``argmax`` -- the cell's verdict, read along the matched-KL grid up to its end: every
  f-divergence optimum, the KL tilt of every strictly increasing transform of the proxy and
  best-of-n as n -> inf tend to the pool argmax, whose utility gain tends to 0 iff X is heavier than
  every exponential (E[V | V + X >= t] -> E[V] for the arena's heavy laws, all subexponential: Kwa,
  Thomas & Garriga-Alonso 2024); under a light X it grows (Gaussian) or levels off (exponential:
  E[V | V + X = s] -> Var(V)). The clip is the exception: it ties the top 1% of the base, so its
  limit is uniform on {r >= base q99}, a fixed population policy (KL log 100).
* ``fixed_kl`` -- the trend at a fixed KL: does the column's optimum lose its utility gain as N
  grows? Yes for the KL tilt of a proxy heavier than every exponential (the penalised objective is
  unbounded, its pool optimum follows the pool's top); for Hellinger under every unbounded proxy
  (H^2 <= 2 bounds the penalty: no population optimum exists, light X included); no for chi^2 and
  chi^2 + KL (their optimum at a fixed KL has a population limit whenever E X < inf; what Var(X) =
  inf breaks is the chi^2-penalised objective's supremum, seen as proxy gain growing and the
  utility share collapsing at matched divergence), best-of-n at a fixed n and the bounded
  transforms (population policies the pool only estimates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLUMNS = (
    "kl",
    "kl_budget",
    "bon",
    "chi2",
    "mixed",
    "hellinger",
    "clip",
    "log_sigmoid",
    "rank",
    "ens_min",
    "ens_mean",
    "ens_median",
    "ens_uwo",
    "ens_min(rho=0.5)",
    "ens_mean(rho=0.5)",
    "ens_median(rho=0.5)",
    "info",
    "alarm-stop",
    "holdout-stop",
)
STABLE = 0.8
"""A measurement holds across seeds when at least this share of them (4 of 5) reads it."""


def direction(dU: float, lo: float, hi: float) -> str:
    """down | up | flat (no significant change) | none (no interval)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "none"
    return "down" if hi < 0 else "up" if lo > 0 else "flat"


HEAVY = ("student_t", "lognormal", "pareto", "levy")
"""Heavier than every exponential (lim e^{tx} P(X > x) = inf for every t > 0); the rest are light."""
TRANSFORMS = ("clip", "log_sigmoid", "rank")


@dataclass(frozen=True)
class LawClass:
    heavy: bool
    """Heavier than every exponential."""
    infinite_variance: bool
    """Var(X) = inf."""
    index: float | None
    """The power-law tail index alpha (P(X > x) ~ x^-alpha), where the law has one."""


def law_class(law: str) -> LawClass:
    """The class of an error-law label (`pareto(alpha=1.5) x1`, `student_t(df=3) x0.5`, ...)."""
    from goodhart.pipeline.config.schema import parse_law

    d = parse_law(law.split(" x")[0])
    name = d["name"]
    index = {
        "student_t": d.get("df", 2.0),
        "pareto": d.get("alpha", 1.5),
        "levy": 0.5,
    }.get(name)
    return LawClass(name in HEAVY, index is not None and index <= 2, index)


@dataclass(frozen=True)
class Prediction:
    argmax: bool | None
    """The cell, read along its matched-KL grid to the argmax: catastrophic (None: no statement)."""
    fixed_kl: bool | None
    """At a fixed KL, the utility gain tends to base as N grows (None: no statement)."""
    why: str

    @property
    def verdict(self) -> str:
        """catastrophic | no catastrophe | none: the cell's predicted verdict along its grid."""
        if self.argmax is None:
            return "none"
        return "catastrophic" if self.argmax else "no catastrophe"


def kind_of(column: str) -> str:
    """The column's kind: `ens_min(rho=0.5)` -> ens_min, `clip+ens_min` -> the transform."""
    c = column.split("(")[0]
    for t in TRANSFORMS:
        if t in c.split("+"):
            return t
    return c.split("+")[0]


def ens_index(kind: str, alpha: float, k: int = 4) -> float:
    """The tail index of k independent Pareto(alpha)-tailed members combined: the combination
    exceeds a large x only when m members do, P ~ x^(-m alpha). min: all k; mean: one; median:
    ceil(k/2) (the upper middle member); uwo (mean - std, lam = 1): more than k/2 (with m equal
    large members mean - std = x (m/k - sqrt(m/k (1 - m/k))) > 0 iff m > k/2; k = 4: three)."""
    m = {"ens_min": k, "ens_mean": 1, "ens_median": -(-k // 2), "ens_uwo": k // 2 + 1}[kind]
    return m * alpha


def fixed_kl(law: str, column: str) -> bool | None:
    """The fixed-KL statement for this law and column (module docstring)."""
    c, kind = law_class(law), kind_of(column)
    if kind in ("alarm-stop", "holdout-stop"):
        return None
    if kind == "hellinger":
        return True  # every arena law is unbounded above
    if kind in ("chi2", "mixed", "bon", *TRANSFORMS):
        return False
    return c.heavy  # kl, kl_budget, info, every ensemble (a combination of heavy members is heavy)


def predict(law: str, column: str) -> Prediction:
    """Both statements for an independent error of this law, and why."""
    c, kind = law_class(law), kind_of(column)
    if kind in ("alarm-stop", "holdout-stop"):
        return Prediction(None, None, "an empirical stopping rule: measured, not predicted")
    if kind == "clip":
        end = "the limit is uniform on {r >= base q99}, a population policy: no catastrophe"
    elif c.heavy:
        end = "heavy X: the pool argmax's utility -> base"
    else:
        end = "light X: the pool argmax keeps (Gaussian: grows) its utility"
    return Prediction(kind != "clip" and c.heavy, fixed_kl(law, column), f"{end}; fixed KL: {column_rule(column)}")


def column_rule(column: str) -> str:
    """The column's fixed-KL statement in words, for every law at once (the legend under the matrix)."""
    kind = kind_of(column)
    if kind in ("alarm-stop", "holdout-stop"):
        return "an empirical stopping rule: measured, not predicted"
    if kind in TRANSFORMS:
        return "bounded above: proxy gain <= sup T - E T at any KL and a population optimum exists: converges" + (
            " (the clip's limit too: uniform on the base's top 1%)" if kind == "clip" else ""
        )
    if kind == "bon":
        return "a fixed n is a population policy the pool only estimates: converges"
    if kind == "chi2":
        return (
            "converges (a population optimum exists when E X < inf); Var(X) = inf makes the chi^2-penalised objective "
            "unbounded (mass eps on {X > x}: chi^2 ~ eps^2 / P(X > x), gain ~ eps x): proxy gain up, share -> 0"
        )
    if kind == "mixed":
        return "as chi^2 (its KL term is of lower order in the supremum): converges; Var(X) = inf: proxy gain up, share -> 0"
    if kind == "hellinger":
        return "H^2 <= 2: no population optimum for any unbounded proxy; the KL goes to the pool's top: -> base for every law"
    if kind.startswith("ens_") and "rho=" in column:
        return "a shared component S: min, mean and median keep S's tail (index alpha): -> base iff heavy"
    if kind.startswith("ens_"):
        idx = {"ens_min": "4 alpha", "ens_mean": "alpha", "ens_median": "2 alpha", "ens_uwo": "3 alpha"}.get(kind, "?")
        return f"4 independent Pareto(alpha) members combine to index {idx} (members that must be large): -> base iff heavy"
    if kind == "info":
        return "X / sqrt(k) keeps X's tail: as kl"
    if kind == "kl_budget":
        return "the KL tilt on every prompt: as kl"
    return "Kwa et al. 2024: the KL-penalised objective is unbounded iff X is heavier than every exponential: -> base iff heavy"
