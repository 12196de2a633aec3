"""What theory predicts for each arena cell (docs/arena.md derives every line; tests/test_arena_theory.py
pins each statement numerically). V ~ light (Gaussian), X independent of V.

Two statements per (error law, column), both about the limit N -> inf of the pool:

* ``fixed_kl``: at a fixed KL, does the column's optimum lose its utility gain as the pool grows
  (the penalised objective's supremum is infinite, approached by policies with utility at base:
  Kwa et al.'s catastrophe)? Tested by the trend in N at matched KL.
* ``argmax``: at the end of every grid, the pool argmax that every f-divergence optimum and the
  tilt of every monotone transform (and best-of-n as n -> inf) tends to: its utility tends to the
  base level iff X is heavier than every exponential (E[V | V + X >= t] -> E[V], Kwa et al.);
  under a light X it grows (Gaussian) or levels off (exponential: E[V | V + X = s] -> Var(V)).

A cell's verdict is read along the whole matched-KL grid, its end included, so its predicted
verdict is catastrophic iff either statement holds; the fixed-KL statement is what separates the
columns under a heavy error.
"""

from __future__ import annotations

from dataclasses import dataclass

HEAVY = ("student_t", "lognormal", "pareto", "levy")
"""Heavier than every exponential (lim e^{tx} P(X > x) = inf for every t > 0); the rest are light."""


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
    fixed_kl: bool | None
    """Catastrophe at a fixed KL as N grows (None: no statement: an empirical rule)."""
    argmax: bool | None
    """Catastrophe in the argmax limit (the grid's end)."""
    why: str

    @property
    def verdict(self) -> str:
        """catastrophic | no catastrophe | none (no statement) for the cell read along its grid."""
        if self.fixed_kl is None and self.argmax is None:
            return "none"
        return "catastrophic" if (self.fixed_kl or self.argmax) else "no catastrophe"


def _base(column: str) -> str:
    """The column's kind: `ens_min(rho=0.5)` -> ens_min, `clip+ens_min` -> the transform."""
    c = column.split("(")[0]
    for t in ("clip", "log_sigmoid", "rank"):
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


def _ens_index(kind: str, a: float | None, k: int = 4) -> str:
    if a is None or kind not in ("ens_min", "ens_mean", "ens_median", "ens_uwo"):
        return "still heavier than every exponential" if kind != "ens_mean" else "of the members' tail"
    return f"index {ens_index(kind, a, k):g}"


def predict(law: str, column: str) -> Prediction:
    """The two statements for an independent error of this law (module docstring)."""
    c = law_class(law)
    kind = _base(column)
    shared = "rho=" in column
    argmax = c.heavy
    if kind in ("alarm-stop", "holdout-stop"):
        return Prediction(None, None, "an empirical stopping rule: measured, not predicted")
    if kind in ("clip", "log_sigmoid", "rank"):
        return Prediction(
            False,
            argmax,
            "a proxy bounded above: E exp(T/coef) is finite, the population optimum exists and the proxy gain is at "
            "most sup T - E T at any KL; but T keeps the argmax, which it reaches as coef -> 0",
        )
    if kind == "bon":
        return Prediction(
            False,
            argmax,
            "best-of-n at a fixed n is a population policy (the pool only estimates it); n -> inf: the argmax",
        )
    if kind in ("chi2", "mixed"):
        return Prediction(
            c.infinite_variance,
            argmax,
            "chi^2-penalised objective unbounded iff Var(X) = inf (mass eps on {X > x}: chi^2 ~ eps^2 / P(X > x), "
            "gain ~ eps x)" + ("; the KL term of chi^2 + KL is of lower order" if kind == "mixed" else ""),
        )
    if kind == "hellinger":
        return Prediction(
            c.heavy,
            argmax,
            "H^2 <= 2: the penalised objective is unbounded for every unbounded proxy and the optimum has no "
            "population limit; it follows the pool's top, which carries the utility iff X is light",
        )
    if kind.startswith("ens_"):
        if shared:
            return Prediction(
                c.heavy, argmax, "a shared error component S: every combination keeps S's tail (index alpha)"
            )
        return Prediction(
            c.heavy,
            argmax,
            f"k = 4 independent members: the combined error is {_ens_index(kind, c.index)}, heavy iff the members are",
        )
    if kind == "info":
        return Prediction(c.heavy, argmax, "X / sqrt(k) has the tail of X: the KL tilt's prediction")
    # kl, kl_budget (and any other tilt of the raw proxy)
    return Prediction(
        c.heavy,
        argmax,
        "Kwa et al. 2024: the KL-penalised objective is unbounded iff X is heavier than every exponential",
    )


def column_rule(column: str) -> str:
    """The column's prediction in words, for every law at once (the legend under the matrix)."""
    kind = _base(column)
    if kind in ("alarm-stop", "holdout-stop"):
        return "an empirical stopping rule: measured, not predicted"
    if kind in ("clip", "log_sigmoid", "rank"):
        return (
            "bounded above: the proxy gain is at most sup T - E T at any KL and the population optimum exists "
            "(no catastrophe at a fixed KL); T keeps the argmax, reached as coef -> 0"
        )
    if kind == "bon":
        return "a fixed n is a population policy the pool only estimates (no catastrophe at a fixed KL); n -> inf: the argmax"
    if kind == "chi2":
        return "chi^2-penalised objective unbounded iff Var(X) = inf (mass eps on {X > x}: chi^2 ~ eps^2 / P(X > x), gain ~ eps x)"
    if kind == "mixed":
        return "as chi^2: unbounded iff Var(X) = inf; the KL term of chi^2 + KL is of lower order"
    if kind == "hellinger":
        return "H^2 <= 2: no population optimum for an unbounded proxy; it follows the pool's top, which keeps utility iff X is light"
    if kind.startswith("ens_") and "rho=" in column:
        return "a shared component S: min, mean and median all keep S's tail (index alpha): heavy iff the law is"
    if kind.startswith("ens_"):
        return (
            "k = 4 independent Pareto(alpha) members combine to index "
            f"{ {'ens_min': '4 alpha', 'ens_mean': 'alpha', 'ens_median': '2 alpha', 'ens_uwo': '3 alpha'}[kind] }"
            " (the number of members that must be large); still heavy iff the members are"
        )
    if kind == "info":
        return "X / sqrt(k) keeps X's tail: as the KL tilt"
    if kind == "kl_budget":
        return "the KL tilt on every prompt: as kl"
    return "Kwa et al. 2024: the KL-penalised objective is unbounded iff X is heavier than every exponential"
