"""Report: reading a finished sweep. Verdict tables and report.md (verdicts), the rule versions
their labels come from (rules), the figures and report.html (html), what each flag and score they show means (legend), the per-prompt gains the verdicts pair (units), the points a verdict does not cover yet (coverage), the resolve rounds that grow unresolved curves' pools
(resolve), the held-out proxy's estimate
(holdout) and its scoring against exact truth (holdout_eval) on its dev and test families
(holdout_bench), the gold-free alarm beside the verdicts (alarm_tables), scored against them (alarm_eval) and on procedurally drawn sweeps
(alarm_bench) and on families of them that differ from the tuning family (alarm_families), the arena's matrix
of error laws x mitigations (arena), its tables and heat map (arena_render) and what theory predicts
for each column (arena_theory), the learned reward model's
error (learned), a user's per-sample file read as a sweep for `goodhart analyze` (samples,
analyze) and a sweep written in that format (export_samples), and a user's sample file for
`goodhart tails` (tail_input). Nothing on the run side imports this room.

Imports: sweeps, base, config, errors, io, goodhart.eval.
"""
