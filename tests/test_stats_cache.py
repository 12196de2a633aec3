"""The disk cache of per-pool statistics (pipeline/base/pool.py pool_memo over pipeline/io.py
write_tree / read_tree): a statistic of a pool is computed once and read back by every process,
exactly as computed; keyed on the pool's bytes, the parameters and the code; torn files,
foreign classes and a full cache are handled; two processes that miss together compute once."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import goodhart.pipeline.base.pool as pool_mod
from goodhart.pipeline.io import NotATree, UnreadableFile, evict_lru, is_mapped, read_tree, write_tree


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    """A private GOODHART_CACHE and an empty in-process memo (the disk layer is what is tested)."""
    monkeypatch.setenv("GOODHART_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GOODHART_STATS_CACHE_MB", raising=False)
    monkeypatch.setattr(pool_mod, "_MEMO", {})
    return tmp_path / "cache" / "stats"


def test_a_tree_reads_back_exactly(tmp_path, monkeypatch):
    import goodhart.pipeline.io as io
    from goodhart.eval.alarm import BaseStats

    monkeypatch.setattr(io, "MAP_AT_BYTES", 4096)  # this small file is mapped as a large one is
    rng = np.random.default_rng(0)
    b = rng.standard_t(3, size=(3, 2000))
    s = BaseStats.from_pool(b, n_null=9, null_seed=2)
    s.null.dv_bound(0.5)  # fills the null's CGF memo (a dict keyed by floats)
    path = write_tree(tmp_path / "s.tree", s)
    t = read_tree(path)
    assert type(t) is BaseStats and type(t.null) is type(s.null)
    for f in dataclasses.fields(s):
        a, c = getattr(s, f.name), getattr(t, f.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == c.dtype and np.array_equal(a, c) and not c.flags.writeable
        elif f.name not in ("null",):
            assert a == c, f.name
    for x, y in zip(s.null.tails, t.null.tails):
        assert np.array_equal(x, y)
    assert t.null._cgf_values == s.null._cgf_values and t.null.me_slope == s.null.me_slope
    assert is_mapped(t.null.tails[0]) and t.null.dv_bound(0.5) == s.null.dv_bound(0.5)

    odd = {"nan": math.nan, 1.5: (np.float32(2.5), [np.zeros((0, 3)), None, True]), "s": "x"}
    back = read_tree(write_tree(tmp_path / "odd.tree", odd))
    assert math.isnan(back["nan"]) and back["s"] == "x" and back[1.5][1][1] is None and back[1.5][1][2] is True
    assert back[1.5][0] == np.float32(2.5) and back[1.5][0].dtype == np.float32 and back[1.5][1][0].shape == (0, 3)


def test_torn_foreign_and_unstorable_trees_are_refused(tmp_path):
    path = write_tree(tmp_path / "a.tree", {"x": np.arange(1000.0)})
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # a torn file (never written so, but a disk can lose it)
    with pytest.raises(UnreadableFile):
        read_tree(path)
    path.write_bytes(b"not a tree at all")
    with pytest.raises(UnreadableFile):
        read_tree(path)
    # A header that names a class outside goodhart is never imported or built.
    foreign = whole.replace(b'"x"', b'"x"', 1)
    head = b'{"tree":{"__dataclass__":"os:system","fields":{}},"arrays":[]}'
    foreign = whole[:16] + len(head).to_bytes(8, "little") + head
    path.write_bytes(foreign)
    with pytest.raises(UnreadableFile, match="outside goodhart"):
        read_tree(path)
    with pytest.raises(NotATree):
        write_tree(tmp_path / "b.tree", {"f": object()})
    with pytest.raises(NotATree):
        write_tree(tmp_path / "c.tree", np.array([object()]))
    assert not (tmp_path / "b.tree").exists()


def test_eviction_keeps_the_newest_under_the_bound(tmp_path):
    for i in range(5):
        p = write_tree(tmp_path / f"{i}.tree", np.zeros(1000))  # ~8 kB each
        os.utime(p, ns=(i * 10**9, i * 10**9))
    os.utime(tmp_path / "1.tree")  # read recently: kept
    size = (tmp_path / "0.tree").stat().st_size
    evict_lru(tmp_path, 2 * size, keep=tmp_path / "0.tree")
    assert sorted(p.name for p in tmp_path.glob("*.tree")) == ["0.tree", "1.tree"]


def _stat(a, scale=1.0):
    _stat.calls += 1  # type: ignore[attr-defined]
    return {"mean": np.asarray(a).mean(1) * scale, "top": float(np.max(a))}


def test_pool_memo_computes_once_and_reads_the_disk_after(cache, monkeypatch):
    _stat.calls = 0  # type: ignore[attr-defined]
    a = np.random.default_rng(0).normal(size=(4, 256))
    first = pool_mod.pool_memo(_stat, a, scale=2.0)
    monkeypatch.setattr(pool_mod, "_MEMO", {})  # another process: nothing in memory
    again = pool_mod.pool_memo(_stat, a.copy(), scale=2.0)
    assert _stat.calls == 1 and np.array_equal(first["mean"], again["mean"]) and again["top"] == first["top"]
    # Everything that made it is in the key: the bytes, the parameters, the code.
    b = a.copy()
    b[0, 0] = np.nextafter(b[0, 0], 1)
    pool_mod.pool_memo(_stat, b, scale=2.0)
    pool_mod.pool_memo(_stat, a, scale=3.0)
    pool_mod.pool_memo(_stat, a.astype(np.float32), scale=2.0)
    assert _stat.calls == 4
    monkeypatch.setattr(pool_mod, "_MEMO", {})
    monkeypatch.setattr(pool_mod, "code_version", lambda fn: "edited")
    pool_mod.pool_memo(_stat, a, scale=2.0)
    assert _stat.calls == 5, "a statistic made by other code was served as this code's"
    assert len(list(cache.glob("stat-*.tree"))) == 5


def test_code_version_follows_the_statistic_and_eval(tmp_path, monkeypatch):
    from goodhart.eval.alarm import BaseStats

    v = pool_mod.code_version(BaseStats.from_pool)
    assert v == pool_mod.code_version(BaseStats.for_rule) != pool_mod.code_version(_stat)
    monkeypatch.setattr(pool_mod, "_eval_digest", lambda: "eval/ edited")
    assert pool_mod.code_version(BaseStats.from_pool) != v


def test_a_torn_cache_file_is_computed_again(cache, monkeypatch):
    _stat.calls = 0  # type: ignore[attr-defined]
    a = np.ones((2, 8))
    pool_mod.pool_memo(_stat, a)
    (f,) = cache.glob("stat-*.tree")
    f.write_bytes(f.read_bytes()[:20])
    monkeypatch.setattr(pool_mod, "_MEMO", {})
    assert pool_mod.pool_memo(_stat, a)["top"] == 1.0 and _stat.calls == 2
    monkeypatch.setattr(pool_mod, "_MEMO", {})
    pool_mod.pool_memo(_stat, a)
    assert _stat.calls == 2  # rewritten whole


def test_the_cache_is_bounded_and_can_be_turned_off(cache, monkeypatch):
    from goodhart.pipeline.errors import UserError

    _stat.calls = 0  # type: ignore[attr-defined]
    rng = np.random.default_rng(1)
    monkeypatch.setenv("GOODHART_STATS_CACHE_MB", "0.02")  # ~21 kB: two of these 8 kB results
    for _ in range(4):
        pool_mod.pool_memo(_stat, rng.normal(size=(1000, 2)))
    assert len(list(cache.glob("*.tree"))) == 2
    monkeypatch.setenv("GOODHART_STATS_CACHE_MB", "0")
    monkeypatch.setattr(pool_mod, "_MEMO", {})
    files = set(cache.glob("*.tree"))
    pool_mod.pool_memo(_stat, rng.normal(size=(4, 4)))
    assert set(cache.glob("*.tree")) == files and _stat.calls == 5
    for bad in ("lots", "-1", "nan"):
        monkeypatch.setenv("GOODHART_STATS_CACHE_MB", bad)
        with pytest.raises(UserError, match="GOODHART_STATS_CACHE_MB"):
            pool_mod.stats_cache_bytes()


def test_an_unwritable_cache_still_computes(cache, monkeypatch):
    _stat.calls = 0  # type: ignore[attr-defined]
    cache.parent.mkdir(parents=True)
    cache.write_text("a file where the folder should be")
    out = pool_mod.pool_memo(_stat, np.ones((2, 2)))
    assert out["top"] == 1.0 and _stat.calls == 1


def test_alarm_base_statistics_from_disk_equal_a_fresh_build(cache, monkeypatch):
    from goodhart.eval.alarm import AlarmRule, BaseStats, tilt_alarm
    from goodhart.pipeline.base.ensemble import base_stats

    b = np.random.default_rng(3).lognormal(0, 1.5, size=(4, 4096))
    rule = AlarmRule(n_null=19)
    base_stats(b, rule)
    monkeypatch.setattr(pool_mod, "_MEMO", {})
    disk, fresh = base_stats(b, rule), BaseStats.for_rule(b, rule)
    assert disk.tail == fresh.tail and disk.sigma == fresh.sigma
    np.testing.assert_equal(tilt_alarm(b, 0.5, 1.0, rule, disk).row(), tilt_alarm(b, 0.5, 1.0, rule, fresh).row())


SCRIPT = """
import sys, time
import numpy as np
from goodhart.pipeline.base.pool import pool_memo

def slow_stat(a):
    with open(sys.argv[1], "a") as f:
        f.write("computed\\n")
    time.sleep(1.0)
    return {"s": a * 2}

out = pool_memo(slow_stat, np.arange(12.0).reshape(3, 4))
assert np.array_equal(out["s"], np.arange(12.0).reshape(3, 4) * 2)
"""


def test_two_processes_that_miss_together_compute_once(tmp_path):
    script = tmp_path / "stat.py"
    script.write_text(textwrap.dedent(SCRIPT))
    log = tmp_path / "calls.txt"
    env = {**os.environ, "GOODHART_CACHE": str(tmp_path / "cache")}
    env.pop("GOODHART_STATS_CACHE_MB", None)
    procs = [subprocess.Popen([sys.executable, str(script), str(log)], env=env) for _ in range(2)]
    assert [p.wait(120) for p in procs] == [0, 0]
    assert log.read_text() == "computed\n"
