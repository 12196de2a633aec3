"""Report: reading a finished sweep. Verdict tables and report.md (verdicts), the figures and
report.html (html), the gold-free alarm beside the verdicts (alarm_tables) and scored against
them (alarm_eval), the learned reward model's error (learned), and a user's sample file for
`goodhart tails` (samples). Nothing on the run side imports this room.

Imports: sweeps, base, config, errors, io, goodhart.eval.
"""
