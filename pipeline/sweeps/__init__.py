"""Sweeps: the sweep file (spec), one invocation end to end (invoke), the local runner (local),
one point run and recorded (point), the sweep directory and MLflow parent run (record),
one runner per sweep directory (lock), interrupts and child-run states (runstate), MLflow
access (tracking), run names, tags and status labels (labels), tables, the report and its
figures and report.html (report_html), the gold-free alarm beside the verdicts (alarm_report)
and scored against them (alarm_eval). May import optimizers/, train/, base/,
config/, io, errors, and goodhart.eval."""
