"""What every flag and score a report shows means: one text, read by report.html, report.md and
the terminal (`goodhart report`, `goodhart analyze`), with the thresholds of the rules in force.
tests/test_report_html.py checks that every flag a table can show is explained here.

Imports: config, goodhart.eval.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the rules' modules load scipy: imported where a legend is written
    from goodhart.eval.alarm import AlarmRule
    from goodhart.eval.goodhart import VerdictRule

POOL_BOUND = 0.9  # a pool-based KL at >= 90% of its ceiling log N is set by the pool size, not the optimizer


def flags(rule: VerdictRule | None = None) -> dict[str, str]:
    """flag -> what it means, for every flag the verdict tables can carry."""
    from goodhart.eval.goodhart import VerdictRule
    from goodhart.pipeline.config.schema import EvalConfig

    rule = rule or VerdictRule()
    return {
        "dominated": (
            f"significantly and more than the margin m ({rule.near_base:g} x the curve's peak gain or best-of-2's) below "
            "another optimizer's point at no more KL, or below best-of-2 on the base pool: over-optimized or a weaker "
            "optimizer, and the data do not say which"
        ),
        "n>N/4": (
            "best-of-n with n above a quarter of the pool N: each prompt's estimate rests on a few draws, so its "
            "interval is wide (the point's warnings hold a WidePoolWarning)"
        ),
        "low-ESS": (
            f"a tilt point whose worst prompt has an effective sample size 1 / sum w^2 below eval.min_ess "
            f"(default {EvalConfig().min_ess:g}): its estimate rests on a few samples of the pool; it cannot be a peak"
        ),
        "pool-dependent": (
            "a tilt point whose estimate on the pool N differs from that on its nested sub-pool N/4 by more than "
            "its interval (tilt/drift/proxy, tilt/drift/utility): the number describes this pool, not the "
            "population optimum; it cannot be a peak"
        ),
        "pool-bias": (
            f"a tilt point whose estimated pool bias (the jackknife over each prompt's pool) exceeds {rule.pool_bias:g} "
            "standard errors of its utility gain: its interval, which covers the N-sample pool's optimum, covers the "
            "population's below its nominal level"
        ),
        "pool-bound": (
            f"a pool-based KL (tilt, best-of-n) at >= {POOL_BOUND:.0%} of log N, the most a pool of N samples can "
            "show: the pool size, not the optimizer, sets it"
        ),
    }


def scores(alarm: AlarmRule | None = None) -> dict[str, str]:
    """column -> what it means, for the numbers beside the verdicts and in the alarm table."""
    from goodhart.eval.alarm import AlarmRule

    alarm = alarm or AlarmRule()
    return {
        "share": "gain(utility) / gain(proxy): how much of the proxy's gain is real",
        "alarm (no gold)": (
            "the gold-free alarm's level and score (alarm rule 5). alarm: this gain is being bought in a proxy tail "
            f"heavier than exponential -- the local tail test rejects (p (local) < alpha = {alarm.alpha:g}) and at "
            f"least {alarm.share:g} of the proxy gain is carried by samples beyond the bulk's 0.9 quantile; watch: "
            "the light-tailed null is rejected but this point's own evidence does not say its gain is tail-bought "
            "(a smaller tail share, or only the curve-level tests: p (gain test), p (tail shape)); quiet: nothing "
            "rejects, a gain within noise, or (samples) no more than the base policy's own batches gain. A risk "
            "flag: as a sign the utility turns it assumes a light or bounded utility. The score is tail share / "
            f"{alarm.share:g} when the local test rejects, else 0: a score >= 1 is an alarm"
        ),
        "p (local)": (
            "the local tail test: where this point buys its gain (its samples weighted by mass x reward above the "
            "base median), the base pool's distinct rewards' normalized top spacings, deeper half over shallower "
            "half; F-exact under an exponential tail at any scale, small when the hazard falls with depth (a tail "
            "heavier than exponential there)"
        ),
        "tail share": "share of the proxy gain carried by samples beyond the bulk's 0.9 quantile (the base's own share subtracted)",
        "depth": "share of the base pool above the middle of where the point buys its gain (about 1 / n for best-of-n)",
        "p (gain test)": (
            "p-value of the proxy gain under the light-tailed null: the same optimizer on the base pool with its "
            "tail beyond the 0.9 quantile redrawn from an exponential fitted to the bulk (a policy given as "
            "samples: the null's Donsker-Varadhan bound at its KL); below alpha / 2 it says watch at most"
        ),
        "p (tail shape)": (
            "p-value of the base pool's proxy mean-excess slope under the same null, one number per pool; below "
            "alpha / 2 it says watch at most"
        ),
        "gain/DV bound": "proxy gain / (sigma_bulk sqrt(2 KL)): the most a Gaussian bulk gives at this KL (descriptive)",
    }


TAILS_VS_ALARM = (
    "The tail verdict (light / heavy / inconclusive, eval/tails.py) and the alarm's p (tail shape) are two "
    "different tests, and an inconclusive tail beside a small p (tail shape) is no contradiction: the verdict "
    "asks whether a tail (the base pool's error in a sweep's report, its proxy for a samples file) is heavier "
    "than EVERY exponential (Kwa et al.'s definition) and says heavy only when "
    "the exponential Q-Q slope grows and the GPD shape is positive, both at 99%, so an exponential-like tail is "
    "inconclusive; the alarm asks only whether the base proxy's tail is heavier than the ONE exponential fitted "
    "to its bulk, one-sided at alpha / 2."
)


def markdown(rule: VerdictRule | None = None, alarm: AlarmRule | None = None) -> list[str]:
    """The legend as markdown lines (report.md)."""
    out = ["**Flags**", ""] + [f"- `{k}`: {v}." for k, v in flags(rule).items()]
    out += ["", "**Scores**", ""] + [f"- `{k}`: {v}." for k, v in scores(alarm).items()]
    return out + ["", TAILS_VS_ALARM]
