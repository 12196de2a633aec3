"""Which points of a sweep a report covers: a report of an unfinished sweep (48 of 52 points)
says which points are missing and that its verdict covers the finished ones only, in the
printed output, report.md and report.html alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from goodhart.pipeline.io import read_json

SHOWN = 12  # missing points listed by name; the rest are counted (`goodhart status` has them all)


@dataclass
class Coverage:
    total: int = 0
    missing: list[dict] = field(default_factory=list)
    """{index, id, status, overrides} of each point of points.json that is not done."""

    @property
    def finished(self) -> int:
        return self.total - len(self.missing)

    @property
    def complete(self) -> bool:
        return not self.missing

    def headline(self) -> str:
        """One line: how much of the sweep the verdict covers (empty for a complete sweep)."""
        if self.complete:
            return ""
        return (
            f"unfinished sweep: the verdict covers the {self.finished} finished point(s) of {self.total} only; "
            f"{len(self.missing)} not finished"
        )

    def items(self) -> list[str]:
        """One short line per missing point (the first SHOWN), then how many more."""
        out = [f"#{m['index']} {m['id']} ({m['status']}): {m['overrides']}" for m in self.missing[:SHOWN]]
        if len(self.missing) > SHOWN:
            out.append(f"... and {len(self.missing) - SHOWN} more")
        return out

    def text(self, root: Path) -> str:
        """The printed form: headline, the missing points, and what to do."""
        if self.complete:
            return ""
        lines = [self.headline() + ":", *[f"  {s}" for s in self.items()]]
        lines.append(f"  (`goodhart status {root}` for details; re-run the sweep to finish them)")
        return "\n".join(lines)


def coverage(root: Path) -> Coverage:
    """The sweep's points and those of them not done; empty for a bare results table (no
    points.json) or one that cannot be read (the report's own reading says what is wrong)."""
    from goodhart.pipeline.sweeps.labels import distinguishing_overrides
    from goodhart.pipeline.sweeps.record import point_status

    try:
        entries = read_json(root / "points.json")
        labels = distinguishing_overrides([e["overrides"] for e in entries])
        missing = [
            {"index": e["index"], "id": e["id"], "status": st, "overrides": ov}
            for e, ov in zip(entries, labels)
            if (st := point_status(root, e["id"])) != "done"
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return Coverage()
    return Coverage(len(entries), missing)
