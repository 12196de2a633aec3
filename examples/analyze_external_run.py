"""Read an external run's samples with goodhart: verdicts (with gold), the gold-free alarm and the
base reward's tails, through the public API -- what `goodhart analyze SAMPLES` prints, in Python.

    python examples/analyze_external_run.py                              # the example file
    python examples/analyze_external_run.py my_run.parquet --out runs/my_run_analysis

The file's schema, and how to write one from TRL, OpenRLHF or verl: docs/integrations.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import goodhart

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("samples", nargs="?", default=str(HERE / "samples" / "tiny_run.csv"))
    ap.add_argument("--out", default=None, help="output directory (default: <stem>_analysis beside the file)")
    args = ap.parse_args(argv)

    samples = goodhart.read_samples(args.samples)  # checked: a bad row is one line naming row and column
    n_points = samples.loc[samples["point"] != "base", "point"].nunique()
    print(f"{len(samples)} samples: {n_points} points and {int((samples['point'] == 'base').sum())} base samples")
    res = goodhart.analyze(samples, args.out or Path(args.samples).with_suffix("").as_posix() + "_analysis")
    table = res.labelled if res.labelled is not None else res.results
    cols = [c for c in ("x", "kl", "gain/proxy", "gain/utility", "verdict", "alarm/level", "alarm/score") if c in table]
    print(table[cols].to_string(index=False))
    for curve, t in res.tails.items():
        print(f"tails of the base proxy ({curve}): {t if isinstance(t, str) else t.verdict}")
    if res.report is not None:
        print(f"verdict: {res.report.verdict}; report: {res.report.files[-1]}")
    return res


if __name__ == "__main__":
    main()
