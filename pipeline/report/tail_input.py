"""A sample for the tail diagnostics (`goodhart tails FILE`): one numeric column of a user's
.npy / .npz / .csv / .parquet file, checked to be what eval.tails.tail_verdict can read. Every
way the file or its values can be wrong is a one-line UsageError naming the file and the fix."""

from __future__ import annotations

from pathlib import Path

from goodhart.pipeline.errors import UsageError

TAILS_MIN_N = 500  # eval.tails.tail_verdict's minimum sample


def tail_sample(name: str, x):
    """A 1-D array of finite floats with enough values, or a one-line UsageError saying why not."""
    import numpy as np

    x = np.asarray(x)
    if x.ndim != 1:
        raise UsageError(
            f"{name}: expected a 1-D array of numbers, got shape {x.shape} (save one column or row, e.g. x[:, 0])"
        )
    if x.dtype.kind not in "biuf":
        raise UsageError(f"{name}: expected numbers, got an array of {x.dtype} values")
    x = x.astype(np.float64)
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise UsageError(f"{name}: {bad} of {x.size} values are NaN or infinite; drop them first")
    if x.size < TAILS_MIN_N:
        raise UsageError(f"{name}: {x.size} values; tail diagnostics need at least {TAILS_MIN_N}")
    return x


def read_column(path: Path, column: str | None):
    """The array (npy), the named or first array (npz), or the named or only numeric column
    (csv / parquet, NaNs dropped) of `path`."""
    import numpy as np

    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        if path.suffix == ".npy":
            return np.load(path)
        if path.suffix == ".npz":
            z = np.load(path)
            if not z.files:
                raise UsageError(f"{path} holds no arrays")
            key = column or z.files[0]
            if key not in z.files:
                raise UsageError(f"{path} has no array '{key}' (arrays: {', '.join(z.files)})")
            return z[key]
        if path.suffix in (".csv", ".parquet"):
            import pandas as pd  # (only for tables: pandas costs ~0.5 s of CPU to import)

            df = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except (ValueError, OSError, EOFError) as e:  # not a numpy file, pickled objects, a broken table
        raise UsageError(f"{path}: cannot read it as {path.suffix} ({str(e).splitlines()[0][:120]})") from None
    if path.suffix in (".csv", ".parquet"):
        import pandas as pd

        numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
        key = column or (numeric[0] if len(numeric) == 1 else None)
        if key is None or key not in df:
            raise UsageError(f"{path}: choose a column with --column (numeric columns: {', '.join(numeric)})")
        if key not in numeric:
            raise UsageError(f"{path}: column '{key}' is not numeric (numeric columns: {', '.join(numeric)})")
        return df[key].dropna().to_numpy(float)
    raise UsageError(f"{path}: expected a .npy, .npz, .csv or .parquet file")
