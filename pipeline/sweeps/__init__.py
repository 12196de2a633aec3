"""Sweeps: the sweep file (spec), one invocation end to end (invoke), the local runner (local),
one point run and recorded (point), the sweep directory and MLflow parent run (record),
MLflow access (tracking), run names, tags and status labels (labels), tables, the report and
its figures and report.html (report_html). May import optimizers/, train/, base/,
config/, io, errors, and goodhart.eval."""
