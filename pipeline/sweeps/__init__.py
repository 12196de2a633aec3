"""Sweeps: the sweep file (spec), one invocation end to end (invoke), the local runner (local),
one point run and recorded (point), the sweep directory and MLflow parent run (record),
one runner per sweep directory (lock), interrupts and child-run states (runstate), MLflow
access (tracking), tables and the report. May import optimizers/, train/, base/,
config/, io, errors, and goodhart.eval."""
