"""The built-in offline base model and its corpus (pipeline/base/corpus.py, pipeline/base/tiny_model.py).

The model tests use conftest's session-wide `small_model_dir` (a small recipe built once);
the default recipe is only hashed here, never built.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from goodhart.pipeline.base.corpus import FILLER, builtin_prompts, sentences
from goodhart.pipeline.base.tiny_model import MARKER, TinyRecipe, ensure_tiny_model

REPO = Path(__file__).resolve().parents[1]
MICRO = TinyRecipe(hidden=32, layers=1, heads=2, n_sentences=300, steps=4, batch=4, vocab_size=300)


@pytest.fixture(scope="module")
def vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def _split_sentences(line: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!])\s+", line) if s]


# ---------------------------------------------------------------- corpus
def test_corpus_is_deterministic_in_seed():
    assert sentences(300, 0) == sentences(300, 0)
    assert sentences(300, 0) != sentences(300, 1)
    assert builtin_prompts(300, 0) == builtin_prompts(300, 0)
    assert builtin_prompts(300, 0) != builtin_prompts(300, 1)


def test_corpus_lines_are_short_varied_sentences():
    lines = sentences(2000, 0)
    assert len(set(lines)) > 0.95 * len(lines)
    counts = [len(_split_sentences(x)) for x in lines]
    assert min(counts) == 1 and max(counts) == 3
    assert all(x == x.lower() and x[-1] in ".!" for x in lines)
    text = " ".join(lines)
    for word in (" and ", " but ", " not ", " said that "):
        assert word in text


def test_corpus_sentiment_spreads_over_both_signs(vader):
    scores = [vader.polarity_scores(s)["compound"] for s in sentences(500, 0)]
    assert statistics.pstdev(scores) > 0.3
    assert min(scores) < -0.5 and max(scores) > 0.5
    assert 0.05 < sum(s == 0 for s in scores) / len(scores) < 0.5  # some neutral lines too


def test_filler_is_neutral_and_present_in_a_modest_fraction(vader):
    from vaderSentiment.vaderSentiment import BOOSTER_DICT, NEGATE

    assert FILLER not in vader.lexicon and FILLER not in BOOSTER_DICT and FILLER not in NEGATE
    sents = [s for line in sentences(3000, 0) for s in _split_sentences(line)]
    counts = [s.split().count(FILLER) for s in sents]
    assert 0.10 <= sum(c > 0 for c in counts) / len(sents) <= 0.20
    assert set(counts) == {0, 1, 2}
    # removing the filler never changes VADER's score
    for s in [s for s, c in zip(sents, counts) if c][:200]:
        plain = " ".join(w for w in s.split() if w != FILLER)
        assert vader.polarity_scores(s)["compound"] == pytest.approx(vader.polarity_scores(plain)["compound"])


def test_prompts_are_distinct_short_and_neutral(vader):
    prompts = builtin_prompts(2000, 0)
    assert len(prompts) == len(set(prompts)) == 2000
    assert all(2 <= len(p.split()) <= 6 for p in prompts)
    assert all(vader.polarity_scores(p)["compound"] == 0 for p in prompts)
    assert not any(FILLER in p.split() for p in prompts)


def test_prompts_beyond_capacity_is_an_error():
    with pytest.raises(ValueError, match="distinct prompts"):
        builtin_prompts(1_000_000, 0)


# ---------------------------------------------------------------- recipe
def test_default_recipe_hash_is_stable():
    # Changing this literal invalidates every user's cached base model: bump only on purpose
    # (and bump TinyRecipe.revision when the corpus or the build changes their output).
    assert TinyRecipe().recipe_hash() == "b6ca4c38cb27"
    assert TinyRecipe(steps=1).recipe_hash() != TinyRecipe().recipe_hash()
    with pytest.raises(dataclasses.FrozenInstanceError):
        TinyRecipe().steps = 1  # type: ignore[misc]


def test_recipe_rejects_bad_shapes():
    with pytest.raises(ValueError, match="heads"):
        TinyRecipe(hidden=66, heads=4)
    with pytest.raises(ValueError, match="steps"):
        TinyRecipe(steps=0)


# ---------------------------------------------------------------- built model
def test_built_dir_is_a_complete_hf_directory(small_model_dir: Path):
    names = {p.name for p in small_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", MARKER} <= names
    assert small_model_dir.name.startswith("tiny-")
    assert not any(p.name.startswith(".") for p in small_model_dir.parent.iterdir() if p.is_dir())


def test_loads_offline_and_generates_batched_samples(small_model_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(small_model_dir)
    model = AutoModelForCausalLM.from_pretrained(small_model_dir).eval()
    assert tok.padding_side == "left"
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<s>", "</s>", "<pad>")
    assert model.config.eos_token_id == tok.eos_token_id

    prompts = ["the movie was", "my neighbour said that the food", "i think this phone is"]
    for p in prompts:  # round trip: no leading space, <s> prepended and skipped
        ids = tok(p)["input_ids"]
        assert ids[0] == tok.bos_token_id and tok.decode(ids, skip_special_tokens=True) == p

    batch = tok(prompts, return_tensors="pt", padding=True)
    assert (batch["attention_mask"][:, -1] == 1).all()  # left padded
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(**batch, do_sample=True, max_new_tokens=24, pad_token_id=tok.pad_token_id)
    new = out[:, batch["input_ids"].shape[1] :]
    completions = tok.batch_decode(new, skip_special_tokens=True)
    full = tok.batch_decode(out, skip_special_tokens=True)
    assert all(isinstance(c, str) and c.strip() for c in completions)
    for p, f in zip(prompts, full):
        assert f.startswith(p)


def test_second_call_builds_nothing_and_returns_the_same_path(small_model_dir: Path, monkeypatch):
    from goodhart.pipeline.base import tiny_model

    recipe = TinyRecipe(**json.loads((small_model_dir / MARKER).read_text())["recipe"])
    cache = small_model_dir.parents[1]
    monkeypatch.setattr(tiny_model, "_build", lambda *a, **k: pytest.fail("a cached model was rebuilt"))
    again = ensure_tiny_model(cache, recipe, progress=False)
    assert again == small_model_dir
    monkeypatch.setenv("GOODHART_CACHE", str(cache))  # the env variable names the same cache
    assert ensure_tiny_model(recipe=recipe, progress=False) == small_model_dir


def test_build_is_deterministic(tmp_path: Path):
    a = ensure_tiny_model(tmp_path / "a", MICRO, progress=False)
    b = ensure_tiny_model(tmp_path / "b", MICRO, progress=False)
    for name in ("model.safetensors", "tokenizer.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_concurrent_builders_share_one_directory(tmp_path: Path):
    """Two processes race on an empty cache holding a stale temp dir: one builds, both agree."""
    models = tmp_path / "models"
    stale = models / f".tiny-{MICRO.recipe_hash()}.tmp-killed"
    stale.mkdir(parents=True)
    code = (
        "import sys; from pathlib import Path; from goodhart.pipeline.base.tiny_model import TinyRecipe, ensure_tiny_model; "
        f"print(ensure_tiny_model(Path(sys.argv[1]), TinyRecipe(**{dataclasses.asdict(MICRO)!r}), progress=False))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    paths = {p.communicate(timeout=300)[0].strip().splitlines()[-1] for p in procs}  # last line: libraries may log
    assert all(p.returncode == 0 for p in procs)
    assert len(paths) == 1
    built = Path(paths.pop())
    assert (built / MARKER).is_file()
    assert [p.name for p in models.iterdir() if p.is_dir()] == [built.name]  # stale and temp dirs gone
