"""Prompt sources: the built-in generator and any datasets-loadable file, split by seed."""

import json

import pytest

from goodhart.pipeline.base.prompts import load_prompts
from goodhart.pipeline.config.schema import PromptsConfig
from goodhart.pipeline.errors import PromptError


def test_builtin_split_is_disjoint_seeded_and_stable_under_n_train():
    train, ev = load_prompts(PromptsConfig(n_train=20, n_eval=10, seed=3))
    assert len(train) == 20 and len(ev) == 10 and not set(train) & set(ev)
    assert load_prompts(PromptsConfig(n_train=20, n_eval=10, seed=3)) == (train, ev)
    assert load_prompts(PromptsConfig(n_train=5, n_eval=10, seed=3))[1] == ev  # eval set fixed
    assert load_prompts(PromptsConfig(n_train=20, n_eval=10, seed=4))[1] != ev


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_local_files_with_a_prompt_column(tmp_path, suffix):
    import pandas as pd

    rows = [{"text": f"prompt number {i}", "other": i} for i in range(12)]
    path = tmp_path / f"p{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif suffix == ".csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        pd.DataFrame(rows).to_parquet(path)
    train, ev = load_prompts(PromptsConfig(source=str(path), column="text", n_train=8, n_eval=4))
    assert sorted(train + ev) == sorted(r["text"] for r in rows)


def test_bad_sources_say_what_is_wrong(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n')
    with pytest.raises(PromptError, match="prompts.column 'prompt' is not in .* \\(columns: text\\)"):
        load_prompts(PromptsConfig(source=str(path), n_train=1, n_eval=1))
    with pytest.raises(PromptError, match="has 2 distinct prompts; n_eval \\+ n_train = 4 \\+ 8 = 12"):
        load_prompts(PromptsConfig(source=str(path), column="text", n_train=8, n_eval=4))
    with pytest.raises(PromptError, match="file not found"):
        load_prompts(PromptsConfig(source=str(tmp_path / "missing.csv")))
