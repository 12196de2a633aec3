"""The verdict rule's version and what each version changed, in a module of their own: `goodhart
status` names the rule without importing the rule's statistics (eval/goodhart.py imports
scipy.stats and pandas; tests/test_cli_startup.py pins what status imports). eval/goodhart.py
re-exports both."""

from __future__ import annotations

VERSION = 2
"""The verdict rule's version, named by `goodhart status` and the report. Verdicts are recomputed
from the stored evidence at report time, so a version change never makes a finished point stale;
it says which rule a printed label came from. Bump it, and add its line to ``VERSIONS``, with any
change of what the rule says about the same points (docs/verdicts.md)."""

VERSIONS: dict[int, str] = {
    1: "Each optimizer judged along its own curve; near base by an equivalence margin with the best-of-2 "
    "floor; the utility share as evidence.",
    2: "No label from a missing interval (a sampled estimate over < 2 units is unresolved; only a row "
    "flagged exact is taken at face value); a shown drop is over-optimized before the near-base test; "
    "share-collapse catastrophic only at or past the optimizer's own peak and with the proxy gain's "
    "interval above 0; Holm along each optimizer's curve; intervals from the per-prompt units at the "
    "rule's level (a curve's look level under resolve rounds); tilt points say what their interval "
    "covers (pool-bias); every unresolved point says what would resolve it.",
}
"""What each verdict rule version changed (the current one is ``VERSION``; the manual's table is generated from it)."""
