"""Atomic writes and the cache directory. A crash mid-write never leaves a half file that a
re-run would mistake for a finished result: write to a temp file beside it, then rename."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    """$GOODHART_CACHE, else ~/.cache/goodhart."""
    env = os.environ.get("GOODHART_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "goodhart"


def short_hash(obj: Any, n: int = 12) -> str:
    """sha256 of the canonical JSON of obj, first n hex digits."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call write(tmp_path), then rename tmp over path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        # mkstemp makes the file 0600; a plain open() would follow the umask (a group reading
        # results on a shared filesystem relies on that).
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def current_umask() -> int:
    """The process umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def atomic_savez(path: str | Path, **arrays) -> Path:
    """np.savez, atomically (np.savez itself would append .npz to the temp file's name)."""
    import numpy as np

    def write(p: Path) -> None:
        with open(p, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(path, write)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=1, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


class UnreadableFile(Exception):
    """A file that is there but cannot be read as what it should be (torn, truncated, foreign)."""


_NPZ_OK: dict[tuple[str, int, int], str | None] = {}


def read_npz(path: str | Path) -> dict[str, Any]:
    """Every array of an .npz file, read in full; UnreadableFile (naming the file) when it is torn."""
    import zipfile

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise UnreadableFile(f"{path} is unreadable ({type(e).__name__}: {str(e)[:80]})") from None


def npz_problem(path: str | Path) -> str | None:
    """Why `path` is not a readable .npz (None when it is); remembered per size and mtime, so a
    status of 2,000 points reads each file once."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return f"{p.name} is missing"
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _NPZ_OK:
        try:
            read_npz(p)
            _NPZ_OK[key] = None
        except UnreadableFile:
            _NPZ_OK[key] = f"{p.name} is unreadable (torn or not an .npz)"
    return _NPZ_OK[key]


def check_writable_dir(path: str | Path, what: str) -> None:
    """`path` is (or can be made) a directory this process can write in; a one-line UserError
    otherwise. Called before any work, so a bad output path costs nothing."""
    from goodhart.pipeline.errors import UserError, os_error_line

    p = Path(path)
    q = p
    for q in [p, *p.parents]:  # the nearest existing ancestor is where the first write happens
        if q.exists() and not q.is_dir():
            raise UserError(f"{what} {p}: {q} exists and is not a directory; choose another path")
        if q.is_dir():
            break
    try:
        fd, probe = tempfile.mkstemp(prefix=".goodhart-write-check.", suffix=".tmp", dir=q)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"{what} {p}: {os_error_line(e) or e}") from None


def follow_umask(root: str | Path) -> None:
    """Give every file under `root` the mode a plain open() would (0666 & ~umask; directories
    0777 & ~umask): safetensors and torch write weights 0600, and a group sharing a cache or a
    checkpoint directory relies on the umask."""
    mask = current_umask()
    root = Path(root)
    for p in [root, *root.rglob("*")]:
        try:
            if p.is_symlink():
                continue
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)
        except OSError:
            pass  # not ours (a shared cache): leave it
