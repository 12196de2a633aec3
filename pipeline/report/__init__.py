"""Report: reading a finished sweep. Verdict tables and report.md (verdicts), the figures and
report.html (html), the gold-free alarm beside the verdicts (alarm_tables) and scored against
them (alarm_eval), the learned reward model's error (learned). Nothing on the run side imports
this room. May import sweeps/ (tables, labels, curves, the results it reads), config/, io,
errors, and goodhart.eval."""
