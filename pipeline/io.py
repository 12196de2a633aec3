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


# ============================================================================================
# Array trees on disk: what a statistic of a pool computed once, shared by every process
# ============================================================================================
# One file per tree: a magic line, the header's length (8 bytes, little endian), the header
# (JSON: the tree with every array replaced by its index, and each array's dtype, shape and
# offset), then the arrays' bytes, each 64-byte aligned. A reader maps the file and the arrays
# are read-only views of the map: processes reading the same file share its pages, and a tree
# of hundreds of MB costs a reader nothing until it touches it.
TREE_MAGIC = b"goodhart-tree 1\n"
_ALIGN = 64


class NotATree(TypeError):
    """An object write_tree cannot store (it holds something other than arrays, numbers,
    strings, lists, tuples, dicts and goodhart dataclasses of them)."""


def _encode(o: Any, arrays: list) -> Any:
    import dataclasses

    import numpy as np

    if o is None or isinstance(o, bool | int | float | str):
        return o
    if isinstance(o, np.ndarray | np.generic):
        a = np.asarray(o)
        if a.dtype.hasobject or a.dtype.names is not None:
            raise NotATree(f"an array of dtype {a.dtype}")
        arrays.append(a)
        return {"__array__" if isinstance(o, np.ndarray) else "__scalar__": len(arrays) - 1}
    if isinstance(o, tuple | list):
        items = [_encode(x, arrays) for x in o]
        return {"__tuple__": items} if isinstance(o, tuple) else items
    if isinstance(o, dict):
        return {"__dict__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in o.items()]}
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        cls = type(o)
        if not cls.__module__.startswith("goodhart."):
            raise NotATree(f"a {cls.__module__}.{cls.__qualname__}")
        return {
            "__dataclass__": f"{cls.__module__}:{cls.__qualname__}",
            "fields": {f.name: _encode(getattr(o, f.name), arrays) for f in dataclasses.fields(o)},
        }
    raise NotATree(f"a {type(o).__name__}")


def _decode(o: Any, arrays: list) -> Any:
    if isinstance(o, list):
        return [_decode(x, arrays) for x in o]
    if not isinstance(o, dict):
        return o
    if "__array__" in o:
        return arrays[o["__array__"]]
    if "__scalar__" in o:
        return arrays[o["__scalar__"]][()]
    if "__tuple__" in o:
        return tuple(_decode(x, arrays) for x in o["__tuple__"])
    if "__dict__" in o:
        return {_decode(k, arrays): _decode(v, arrays) for k, v in o["__dict__"]}
    import dataclasses
    import importlib

    module, _, qualname = o["__dataclass__"].partition(":")
    if not module.startswith("goodhart."):  # only the project's own classes are ever rebuilt
        raise ValueError(f"a class outside goodhart: {module}")
    cls: Any = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    if not dataclasses.is_dataclass(cls):
        raise ValueError(f"{module}:{qualname} is not a dataclass")
    values = {k: _decode(v, arrays) for k, v in o["fields"].items()}
    init = {f.name for f in dataclasses.fields(cls) if f.init}
    out = cls(**{k: v for k, v in values.items() if k in init})
    for k, v in values.items():
        if k not in init:
            object.__setattr__(out, k, v)  # (a frozen dataclass's non-init field)
    return out


def write_tree(path: str | Path, obj: Any) -> Path:
    """Store obj (arrays, numbers, strings, lists, tuples, dicts and goodhart dataclasses of them,
    nested) at path, atomically; NotATree for anything else, before anything is written."""
    import numpy as np

    arrays: list[np.ndarray] = []
    tree = _encode(obj, arrays)
    specs, offset = [], 0
    for a in arrays:
        specs.append({"dtype": a.dtype.str, "shape": list(a.shape), "offset": offset})
        offset += -(-a.nbytes // _ALIGN) * _ALIGN
    header = json.dumps({"tree": tree, "arrays": specs}, separators=(",", ":")).encode()
    start = -(-(len(TREE_MAGIC) + 8 + len(header)) // _ALIGN) * _ALIGN

    def write(p: Path) -> None:
        with open(p, "wb") as f:
            f.write(TREE_MAGIC + len(header).to_bytes(8, "little") + header)
            for a, s in zip(arrays, specs):
                f.seek(start + s["offset"])
                f.write(np.ascontiguousarray(a).data)
            f.truncate(start + offset)

    return atomic_write(path, write)


MAP_AT_BYTES = 1 << 20
"""A tree file at least this large is memory-mapped by read_tree; a smaller one is read."""


def read_tree(path: str | Path) -> Any:
    """The object write_tree stored at path; its arrays are read-only (views of a memory map for
    a large file: the pages stay valid if the file is deleted meanwhile). FileNotFoundError when
    there is none; UnreadableFile when it is not a whole tree."""
    import mmap

    import numpy as np

    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        buf: Any = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size >= MAP_AT_BYTES else f.read()
    try:
        n0 = len(TREE_MAGIC)
        if bytes(buf[:n0]) != TREE_MAGIC or size < n0 + 8:
            raise ValueError("not a goodhart tree")
        hlen = int.from_bytes(buf[n0 : n0 + 8], "little")
        head = json.loads(bytes(buf[n0 + 8 : n0 + 8 + hlen]))
        start = -(-(n0 + 8 + hlen) // _ALIGN) * _ALIGN
        arrays = []
        for s in head["arrays"]:
            dt, shape = np.dtype(s["dtype"]), tuple(s["shape"])
            off = start + int(s["offset"])
            nbytes = dt.itemsize * int(np.prod(shape, dtype=np.int64))
            if off + nbytes > size:
                raise ValueError("truncated")
            a = np.ndarray(shape, dt, buffer=buf, offset=off) if nbytes else np.empty(shape, dt)
            a.flags.writeable = False
            arrays.append(a)
        return _decode(head["tree"], arrays)
    except (ValueError, KeyError, TypeError, AttributeError, ImportError, IndexError) as e:
        raise UnreadableFile(f"{path} is unreadable ({type(e).__name__}: {str(e)[:80]})") from None


def is_mapped(a: Any) -> bool:
    """Whether an array's memory is a file's map (page cache the OS can drop, not the process's own)."""
    import mmap

    b = a
    while b is not None:
        if isinstance(b, mmap.mmap):
            return True
        b = getattr(b, "base", None) if not isinstance(b, memoryview) else b.obj
    return False


def evict_lru(folder: str | Path, max_bytes: int, keep: str | Path | None = None, suffix: str = ".tree") -> int:
    """Delete the least recently used files (by mtime: a reader touches what it reads) under
    folder until the rest hold at most max_bytes; never `keep`. Returns the bytes freed. A reader
    that has a file mapped keeps its pages; one about to open it finds nothing and computes."""
    entries = []
    with os.scandir(folder) as it:
        for e in it:
            if e.name.endswith(suffix) and e.is_file(follow_symlinks=False):
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                entries.append((st.st_mtime_ns, st.st_size, e.path))
    total, freed = sum(s for _, s, _ in entries), 0
    keep_s = str(keep) if keep is not None else None
    for _, size, p in sorted(entries):
        if total - freed <= max_bytes:
            break
        if p == keep_s:
            continue
        try:
            os.unlink(p)
            freed += size
        except OSError:
            pass  # another process evicted it first
    return freed


def file_lock(path: str | Path):
    """An exclusive lock on `path` (created if missing) for a `with` block: a second process asking
    for it waits until the first leaves (or dies: the kernel releases it). No-op without fcntl."""
    import contextlib

    @contextlib.contextmanager
    def held():
        try:
            import fcntl
        except ImportError:  # pragma: no cover (not POSIX)
            yield
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    return held()
