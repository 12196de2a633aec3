"""`goodhart alarm-eval SWEEP_DIR...`: how well the gold-free alarm (eval/alarm.py) predicts the
gold verdicts (eval/goodhart.py) over finished sweeps.

Per point: the alarm's level is re-decided from the evidence stored in the row (so a different
AlarmRule can be scored without re-running anything), the gold verdict comes from
`label_points` on that sweep. Positives are gold `over-optimized` and `catastrophic` points,
negatives gold `improving` ones; `baseline` points (nothing optimized) are counted apart.

    recall          alarms among positives / positives
    false alarms    alarms among improving / improving
    precision       alarms on positives / all alarms (baseline included)
    lead (nats)     per (sweep, curve, algo) group -- one optimizer's own curve, along its KL:
                    KL of the first gold over-optimized/catastrophic point minus KL of the
                    first alarm (> 0: earlier)
    peak lead       KL of the verdict's peak of that curve (its `peak` row; else the largest
                    lower bound of the utility gain) minus KL of the first alarm (>= 0: at or before)

`unresolved` points (the gold cannot tell) are neither positives nor negatives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from goodhart.eval import metrics as M
from goodhart.eval.alarm import AlarmRule, decide_row
from goodhart.pipeline.errors import UsageError
from goodhart.pipeline.report.verdicts import gold_labels
from goodhart.pipeline.sweeps.record import load_results

POSITIVE = ("over-optimized", "catastrophic")


@dataclass
class AlarmScores:
    points: pd.DataFrame  # one row per finished point: sweep, group, KL, verdict, level, fired
    groups: pd.DataFrame  # one row per (sweep, error law, algo): first gold turn, first alarm, leads
    counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        p = self.points
        pos, neg = p[p["verdict"].isin(POSITIVE)], p[p["verdict"] == "improving"]
        fired = p[p["fired"]]
        g = self.groups.dropna(subset=["gold_turn_kl"])
        leads = g["lead_nats"].dropna()
        return {
            "points": len(p),
            "positives": len(pos),
            "improving": len(neg),
            "baseline": int((p["verdict"] == "baseline").sum()),
            "recall": float(pos["fired"].mean()) if len(pos) else math.nan,
            "false_alarm_rate": float(neg["fired"].mean()) if len(neg) else math.nan,
            "precision": float(fired["verdict"].isin(POSITIVE).mean()) if len(fired) else math.nan,
            "groups_turning": len(g),
            "groups_caught": int(g["first_alarm_kl"].notna().sum()),
            "median_lead_nats": float(leads.median()) if len(leads) else math.nan,
            "min_lead_nats": float(leads.min()) if len(leads) else math.nan,
            "fired_by_peak": int((self.groups["peak_lead_nats"] >= 0).sum()),
            "groups": len(self.groups),
        }


def _num(v, default: float = math.nan) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(f) else f


def _redecide(df: pd.DataFrame, rule: AlarmRule) -> pd.Series:
    """The alarm level of each row from its stored evidence (p-values, tail share) under `rule`."""
    return df.apply(lambda row: _level(row.to_dict(), rule), axis=1)


def _level(r: dict, rule: AlarmRule) -> str:
    """decide() on one row's (or one logged check's) evidence, by metric name (eval.alarm.decide_row)."""
    return decide_row(r, rule)[1]


def _peak(g: pd.DataFrame) -> pd.Series:
    """The verdict's peak of one optimizer's curve: the row flagged `peak` (eval/goodhart.py),
    else the largest lower bound of the utility gain (never the largest estimate: a noisy max)."""
    if "peak" in g and g["peak"].astype(bool).any():
        return g[g["peak"].astype(bool)].iloc[0]
    lo = M.lo(M.GAIN_UTILITY)
    key = g[lo] if lo in g and g[lo].notna().any() else g[M.GAIN_UTILITY]
    return g.loc[key.astype(float).idxmax()]


def score_sweeps(dirs: list[Path], rule: AlarmRule = AlarmRule(), fire_on: tuple[str, ...] = ("alarm",)) -> AlarmScores:
    frames = []
    for d in dirs:
        f = Path(d) / "results.csv"
        if not f.is_file():
            raise UsageError(f"{d}: no results.csv (expected a finished sweep directory, e.g. runs/demo)")
        cols = load_results(f)
        for col in (M.ALARM_SIGMA, M.ALARM_P):
            if col not in cols:
                raise UsageError(f"{f} has no {col} column: its points predate the calibrated alarm; re-run the sweep")
        lab = gold_labels(Path(d))  # exactly the report's verdicts (paired on prompts)
        lab["sweep"] = str(d)  # the path: two sweeps may share a name (seeds in separate output dirs)
        frames.append(lab)
    pts = pd.concat(frames, ignore_index=True)
    pts["level"] = _redecide(pts, rule)
    pts["fired"] = pts["level"].isin(fire_on)
    rows = []
    curve = "curve" if "curve" in pts else "error_law"
    for (sweep, _, algo), g in pts.groupby(["sweep", curve, "algo"], sort=False):
        # one optimizer's own curve along its own KL (the verdict judges each optimizer apart)
        g = g.sort_values(M.KL)
        law = g["error_law"].iloc[0] if "error_law" in g else ""
        turn = g[g["verdict"].isin(POSITIVE)]
        fired = g[g["fired"]]
        peak = _peak(g)
        first_alarm = float(fired[M.KL].iloc[0]) if len(fired) else math.nan
        gold_turn = float(turn[M.KL].iloc[0]) if len(turn) else math.nan
        rows.append(
            {
                "sweep": sweep,
                "error_law": law,
                "algo": algo,
                "gold_turn_kl": gold_turn,
                "first_alarm_kl": first_alarm,
                "lead_nats": gold_turn - first_alarm,
                "peak_kl": float(peak[M.KL]),
                "peak_lead_nats": float(peak[M.KL]) - first_alarm,
            }
        )
    counts = pts.groupby(["verdict", "level"]).size().to_dict()
    return AlarmScores(pts, pd.DataFrame(rows), {f"{v}/{lv}": int(n) for (v, lv), n in counts.items()})


def confusion(points: pd.DataFrame) -> pd.DataFrame:
    """Points by gold verdict (rows) and alarm level (columns)."""
    return pd.crosstab(points["verdict"], points["level"])


# ============================================================================================
# Trained runs: the online alarm's per-step logs against the per-step utility
# ============================================================================================
TRAINED = ("ppo", "rloo", "grpo", "bon-ft")


def trained_leads(d: Path, smooth: int = 5, rule: AlarmRule | None = None) -> pd.DataFrame:
    """Per trained point of sweep `d`: the step where the training batch's utility peaked (a
    centred rolling mean over `smooth` logged steps: one batch is noisy) and the first step the
    online alarm fired, with the KL of each, from the point's MLflow run (utility is read here
    only to score the alarm; the alarm itself never saw it); and alarm-stop (`algo.stop_on_alarm`):
    the policy it keeps (``kept_step``: the last check read `quiet` before the first `alarm`), its
    smoothed utility (``stop_utility``), gold's best along the steps run (``best_utility``) and the
    regret between them (a run that stopped logged no steps past its stop). rule: re-decide each check's level
    from its logged evidence under this rule (as `score_sweeps` does for points); None: the
    levels the run logged."""
    from goodhart.pipeline.io import read_json

    df = load_results(Path(d) / "results.csv", ("algo", "mlflow_run_id"))
    df = df[df["algo"].isin(TRAINED) & df["mlflow_run_id"].notna()]
    parent = Path(d) / "parent.json"
    if df.empty or not parent.is_file():
        return pd.DataFrame()
    from mlflow import MlflowClient

    client = MlflowClient(read_json(parent)["uri"])

    def hist(run_id: str, key: str) -> pd.Series:
        # per-step metrics are logged under "train/<name>" (older runs: the bare name)
        h = client.get_metric_history(run_id, M.train_name(key)) or client.get_metric_history(run_id, key)
        # step 0 holds the point's final result row (run_point logs it there): not a training step
        return pd.Series({m.step: m.value for m in h if m.step > 0}, dtype=float).sort_index()

    rows = []
    for _, r in df.iterrows():
        util, kl, code = (hist(r["mlflow_run_id"], k) for k in (M.UTILITY, M.KL, M.ALARM_CODE))
        if util.empty:
            continue
        if rule is not None and not code.empty:
            code = _redecide_history(lambda k, run=r["mlflow_run_id"]: hist(run, k), code.index, rule)
        sm = util.rolling(smooth, center=True, min_periods=1).mean()
        peak = int(sm.idxmax())
        fired, watched = code[code >= 2], code[code >= 1]
        first = int(fired.index[0]) if len(fired) else None
        kept = _kept_step(code, first, int(util.index.max()))

        def kl_at(step: int | None, kl: pd.Series = kl) -> float:
            return float(kl.get(step, math.nan)) if step is not None else math.nan

        rows.append(
            {
                "sweep": Path(d).name,
                "error_law": r["error_law"],
                "light": law_is_light(str(r["error_law"])),
                "seed": int(_num(r.get("seed"), 0)),
                "algo": r["algo"],
                "stop_on_alarm": M.ALARM_STOPPED in r and not pd.isna(r[M.ALARM_STOPPED]),
                "steps": int(util.index.max()),
                "peak_step": peak,
                "peak_kl": kl_at(peak),
                "first_alarm_step": first if first is not None else math.nan,
                "first_alarm_kl": kl_at(first),
                "lead_steps": peak - first if first is not None else math.nan,
                "first_watch_step": int(watched.index[0]) if len(watched) else math.nan,
                "kept_step": kept,
                "stop_utility": _at(sm, kept),
                "best_utility": float(sm.max()),
                "regret": float(sm.max()) - _at(sm, kept),
                "final_utility_gain": float(r[M.GAIN_UTILITY]),
            }
        )
    return pd.DataFrame(rows)


def _kept_step(code: pd.Series, first_alarm: int | None, last: int) -> int:
    """The policy alarm-stop keeps: the last check that read `quiet` before the first `alarm` (the
    online core's last not flagged; 0, the start policy, if none did), or the run's last step when
    no check alarmed."""
    if first_alarm is None:
        return last
    quiet = code[(code == 0) & (code.index < first_alarm)]
    return int(quiet.index[-1]) if len(quiet) else 0


def _at(series: pd.Series, step: int) -> float:
    """The smoothed per-step utility at a step (the first logged step's for the start policy, 0)."""
    if step in series.index:
        return float(series[step])
    before = series[series.index <= step]
    return float(before.iloc[-1]) if len(before) else float(series.iloc[0])


def _redecide_history(hist, steps: pd.Index, rule: AlarmRule) -> pd.Series:
    """Level codes (0 quiet, 1 watch, 2 alarm) of the online checks at `steps`, re-decided from
    their logged evidence (the gain is dv_ratio x dv_bound: the row logs both, not the gain)."""
    from goodhart.eval.alarm import LEVELS

    ev = pd.DataFrame({k: hist(k).reindex(steps) for k in _CHECK_KEYS}, index=steps)
    return pd.Series([float(LEVELS.index(_level(r, rule))) for r in ev.to_dict("records")], index=steps, dtype=float)


_CHECK_KEYS = (
    M.ALARM_DV_RATIO,
    M.ALARM_DV_BOUND,
    M.ALARM_SIGMA,
    M.ALARM_P,
    M.ALARM_TAIL_SHARE,
    M.ALARM_N_EFF,
    M.ALARM_TAIL_P,
    M.ALARM_NOISE_P,
    M.ALARM_LOCAL_P,
)


def law_is_light(error_law: str) -> bool:
    """An error label's tail kind, by its law's name (`exponential(scale=0.5) x0.5 [feature]` ->
    exponential): light as the bench's LIGHT_KINDS are (no heavier than an exponential)."""
    from goodhart.pipeline.report.alarm_bench import LIGHT_KINDS

    return error_law.split("(")[0].split(" ")[0].strip() in LIGHT_KINDS


def trained_goals(t: pd.DataFrame) -> pd.DataFrame:
    """Issue 19 item 4's goals per half (seeds even: dev, odd: test, as the bench splits them):
    light runs quiet at every check (never `alarm`), heavy runs' first alarm at or before the
    smoothed utility peak."""
    rows = []
    for half, g in (("dev", t[t["seed"] % 2 == 0]), ("test", t[t["seed"] % 2 == 1])):
        light, heavy = g[g["light"]], g[~g["light"]]
        in_time = heavy["first_alarm_step"].le(heavy["peak_step"]) & heavy["first_alarm_step"].notna()
        rows.append(
            {
                "half": half,
                "light runs": len(light),
                "light quiet": int(light["first_alarm_step"].isna().sum()),
                "heavy runs": len(heavy),
                "heavy alarm <= peak": int(in_time.sum()),
                "heavy never alarmed": int(heavy["first_alarm_step"].isna().sum()),
            }
        )
    return pd.DataFrame(rows)
