"""The docs site builds: `mkdocs build --strict`, offline, in seconds, and what it says from the code
is the code's (the verdict rule, every metric name, the README's demo table).

The build runs with no network where the machine allows it (`unshare -rn`: a private network
namespace with no interfaces), and always with proxies pointing at a closed port, so a plugin
that fetches (material's privacy or social plugin, web fonts) fails the build instead of
slipping through; the built pages must not load anything from another host either.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MKDOCS = Path(sys.executable).parent / "mkdocs"
DEAD = "http://127.0.0.1:9"  # nothing listens on the discard port


def _offline(cmd: list[str]) -> list[str]:
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        return [unshare, "-rn", *cmd]
    return cmd


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    assert MKDOCS.is_file(), f"{MKDOCS} missing: install the dev extra (pip install -e '.[dev]')"
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "HTTP_PROXY": DEAD, "HTTPS_PROXY": DEAD, "http_proxy": DEAD, "https_proxy": DEAD}
    env["NO_MKDOCS_2_WARNING"] = "1"
    cmd = _offline([str(MKDOCS), "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "-d", str(out)])
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return out


def _text(site: Path, page: str) -> str:
    raw = (site / page / "index.html").read_text()
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def test_every_nav_page_is_built(site):
    import yaml

    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    pages = [next(iter(item.values())) for item in nav]
    assert len(pages) >= 15
    for md in pages:
        built = site / ("index.html" if md == "index.md" else f"{md[:-3]}/index.html")
        assert built.is_file(), md
    on_disk = {p.name for p in (REPO / "docs").glob("*.md")}
    assert on_disk == set(pages), f"pages not in the nav, or nav entries with no page: {on_disk ^ set(pages)}"


def test_the_verdict_rule_is_the_codes(site):
    from goodhart.eval.goodhart import rule_text

    assert rule_text() in _text(site, "verdicts")


def test_every_metric_name_is_on_the_generated_page(site):
    import goodhart.eval.metrics as M

    page = _text(site, "metrics")
    names = [v for k, v in vars(M).items() if k.isupper() and isinstance(v, str)]
    assert len(names) > 60
    missing = [n for n in names if f"{n}" not in page]
    assert not missing, missing
    # the comments come along: one that only the source holds
    assert "the PPO step size, NOT the KL to base" in page


def test_the_demo_table_is_the_readmes(site):
    readme = (REPO / "README.md").read_text()
    table = re.search(r"<!-- results: demo[^>]*-->\n```text\n(.*?)```", readme, re.S).group(1)
    assert table.strip() in _text(site, "results")


def test_the_api_reference_reads_the_docstrings(site):
    """mkdocstrings rendered objects from the source (not hand-written text), and the plug-in
    page's factory contract is the schema's own docstring."""
    raw = (site / "api" / "index.html").read_text()
    assert raw.count('class="doc doc-object') >= 3
    from goodhart.pipeline.config.schema import PluginReward

    first = PluginReward.__doc__.split("\n")[0].replace("``", "")
    assert first in " ".join(_text(site, "plugins").split())


def test_nothing_is_loaded_from_another_host(site):
    external = re.compile(r"""<(?:link|script|img)\b[^>]*(?:href|src)=["'](?:https?:)?//""", re.I)
    bad = [str(p.relative_to(site)) for p in site.rglob("*.html") if external.search(p.read_text())]
    assert not bad, f"pages that load from the network: {bad}"


def test_every_rule_version_is_defined_in_the_manual(site):
    """Each version of the alarm rule and of the verdict rule, with what it changed, is on its page
    (generated from eval/alarm.py and eval/goodhart.py VERSIONS: `goodhart status` and the report
    name these versions)."""
    import goodhart.eval.alarm as A
    import goodhart.eval.goodhart as G

    for page, mod in (("alarm", A), ("verdicts", G)):
        text = " ".join(_text(site, page).split())
        assert "Rule versions" in text and f"{mod.VERSION} (current)" in text, page
        for v, what in mod.VERSIONS.items():
            assert " ".join(what.replace("`", "").split())[:60] in text, (page, v)
