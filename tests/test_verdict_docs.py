"""docs/verdicts.md prints the rule as eval/goodhart.py states it (rule_text() is the one source)."""

import re
from pathlib import Path

from goodhart.eval.goodhart import rule_text

DOC = Path(__file__).resolve().parents[1] / "docs" / "verdicts.md"


def test_the_docs_page_holds_rule_text_verbatim():
    block = re.search(
        r"<!-- rule_text\(\) begin -->\n```text\n(.*?)\n```\n<!-- rule_text\(\) end -->", DOC.read_text(), re.S
    )
    assert block, "docs/verdicts.md lost its rule_text() block"
    assert block.group(1) == rule_text(), (
        "regenerate the block: python -c 'from goodhart.eval.goodhart import rule_text; print(rule_text())'"
    )
