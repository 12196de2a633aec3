"""The rule versions a report's labels come from, in one line (`goodhart status` prints it too: this
module imports neither pandas nor the rules' statistics until given rows)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from goodhart.eval import metrics as M

if TYPE_CHECKING:
    import pandas as pd

RULES_DOC = "each version's changes: docs/verdicts.md and docs/alarm.md, Rule versions"


def rules_line(rows: pd.DataFrame | None = None) -> str:
    """The rules labels come from (docs/verdicts.md and docs/alarm.md, "Rule versions"): the verdict
    rule's version (verdicts are recomputed whenever shown) and the alarm rule's -- the code's, and,
    given result rows, the versions and non-default keys (alarm/rule) their alarms were computed under."""
    from goodhart.eval.alarm import VERSION as ALARM_VERSION
    from goodhart.eval.alarm import AlarmRule
    from goodhart.eval.verdict_version import VERSION as VERDICT_VERSION

    alarm = f"alarm rule {ALARM_VERSION}"
    if rows is not None and M.ALARM_VERSION in rows:
        import pandas as pd

        have = sorted({int(v) for v in pd.to_numeric(rows[M.ALARM_VERSION], errors="coerce").dropna()})
        if have and have != [ALARM_VERSION]:
            alarm += f" (rows computed under {', '.join(map(str, have))}: `goodhart sweep` recomputes them)"
    if rows is not None and M.ALARM_RULE in rows:
        keys = sorted({str(k) for k in rows[M.ALARM_RULE].dropna() if str(k) and str(k) != AlarmRule().key()})
        if keys:
            alarm += f", with alarm keys {'; '.join(keys)}"
    return f"verdict rule {VERDICT_VERSION}, {alarm}"
