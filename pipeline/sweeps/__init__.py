"""Sweeps: running a sweep. The sweep file (spec), one invocation end to end (invoke), the local
runner (local), one point run and recorded (point), its MLflow child run, live or recorded by a
worker for the runner to log (child_run), the sweep directory and MLflow parent run
(record), one runner per sweep directory (lock), interrupts and child-run states (runstate),
MLflow access (tracking) and its SQLite store (sqlite_store), run names, tags and status labels (labels), curve identity (curves),
and the tables printed at the end (tables). Reading a finished sweep lives in report/.

Imports: optimizers, train, base, config, errors, io, goodhart.rewards, goodhart.eval.
"""
