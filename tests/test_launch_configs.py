"""The shipped launch configs (configs/accelerate/, configs/deepspeed/) checked by the tools that
will read them: accelerate's own loader and launcher validation, DeepSpeed's own DeepSpeedConfig
(plus the top-level key check DeepSpeed does not do), and a real 2-process DDP run on the CPU.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import KeysView
from pathlib import Path

import pytest

from goodhart.pipeline.config.load import configs_dir

REPO = Path(__file__).resolve().parent.parent
ACCEL = configs_dir() / "accelerate"
DS = configs_dir() / "deepspeed"

# file -> (distributed_type, processes, use_cpu)
EXPECTED = {
    "single_gpu.yaml": ("NO", 1, False),
    "multi_gpu_ddp.yaml": ("MULTI_GPU", 8, False),
    "deepspeed_zero2.yaml": ("DEEPSPEED", 8, False),
    "deepspeed_zero3.yaml": ("DEEPSPEED", 8, False),
    "cpu_multiprocess.yaml": ("MULTI_GPU", 2, True),
}


def test_the_shipped_set_is_complete():
    assert sorted(p.name for p in ACCEL.glob("*.yaml")) == sorted(EXPECTED)
    assert sorted(p.name for p in DS.glob("*.json")) == ["zero2.json", "zero3.json"]


# ---------------------------------------------------------------------------------------------
# accelerate
# ---------------------------------------------------------------------------------------------
def _launcher_args(config: Path, monkeypatch):
    """What `accelerate launch --config_file CONFIG -m goodhart.pipeline.cli run-point D 0` resolves to,
    through accelerate's own parser and validation (from the repository root, as documented)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    monkeypatch.chdir(REPO)
    args = launch_command_parser().parse_args(
        ["--config_file", str(config), "-m", "goodhart.pipeline.cli", "run-point", "D", "0"]
    )
    return _validate_launch_command(args)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_accelerate_config_loads_and_the_launcher_accepts_it(name, monkeypatch):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    cfg = load_config_from_file(str(ACCEL / name))  # raises on unknown keys and bad enum values
    assert isinstance(cfg, ClusterConfig)
    dist, nproc, cpu = EXPECTED[name]
    assert (cfg.distributed_type.value, cfg.num_processes, bool(cfg.use_cpu)) == (dist, nproc, cpu)
    assert cfg.num_machines == 1

    args, defaults, _ = _launcher_args(ACCEL / name, monkeypatch)
    assert args.num_processes == nproc and args.module and args.training_script == "goodhart.pipeline.cli"
    assert args.multi_gpu == (dist == "MULTI_GPU") and args.use_deepspeed == (dist == "DEEPSPEED")
    # The script arguments are a command line our CLI parses.
    from goodhart.pipeline.cli.main import build_parser

    ns = build_parser().parse_args(args.training_script_args)
    assert (ns.verb, ns.sweep_dir, ns.index) == ("run-point", "D", 0)


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_accelerate_configs_pass_accelerates_worker_side_checks(stage, monkeypatch, tmp_path):
    """Replays what the launcher hands the workers (ACCELERATE_* variables) and builds the
    DeepSpeedPlugin a worker builds, which rejects e.g. mixed_precision set in both places."""
    pytest.importorskip("deepspeed", reason="deepspeed is not installed (make setup installs the [deepspeed] extra)")
    from accelerate.utils import DeepSpeedPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env

    def plugin_for(config: Path) -> DeepSpeedPlugin:
        args, defaults, mp_from_config = _launcher_args(config, monkeypatch)
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)  # as launch_command does
        _, env = prepare_deepspeed_cmd_env(args)
        for k, v in env.items():
            if k.startswith("ACCELERATE_"):
                monkeypatch.setenv(k, v)
        return DeepSpeedPlugin()

    p = plugin_for(ACCEL / f"deepspeed_zero{stage}.yaml")
    assert p.zero_stage == stage and p.zero3_init_flag == (stage == 3)
    assert p.hf_ds_config.config["zero_optimization"]["stage"] == stage

    # The check has teeth: mixed_precision in the accelerate file next to a DeepSpeed file.
    import yaml

    bad = yaml.safe_load((ACCEL / f"deepspeed_zero{stage}.yaml").read_text())
    bad["mixed_precision"] = "bf16"
    bad["deepspeed_config"]["deepspeed_config_file"] = str(DS / f"zero{stage}.json")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match="deepspeed_config_file"):
        plugin_for(tmp_path / "bad.yaml")


# ---------------------------------------------------------------------------------------------
# DeepSpeed
# ---------------------------------------------------------------------------------------------
# Numbers for every "auto" in our files, as accelerate would fill them for a model with
# hidden size H = 64 on one process (batch 2 x accumulation 4).
H = 64
AUTO = {
    "train_micro_batch_size_per_gpu": 2,
    "gradient_accumulation_steps": 4,
    "train_batch_size": 8,
    "gradient_clipping": 1.0,
    "bf16.enabled": True,
    "fp16.enabled": False,
    "zero_optimization.reduce_bucket_size": H * H,
    "zero_optimization.stage3_prefetch_bucket_size": int(0.9 * H * H),
    "zero_optimization.stage3_param_persistence_threshold": 10 * H,
}


def fill_auto(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out[k] = fill_auto(v, key + ".")
        elif v == "auto":
            assert key in AUTO, f'"auto" at {key}: add a number for it to AUTO'
            out[k] = AUTO[key]
        else:
            out[k] = v
    return out


class _Recorder(dict):
    """A config dict that records every top-level key DeepSpeedConfig looks up."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.__dict__["seen"] = set()

    def __getitem__(self, k):
        self.seen.add(k)
        return super().__getitem__(k)

    def get(self, k, default=None):
        self.seen.add(k)
        return super().get(k, default)

    def __contains__(self, k):
        self.seen.add(k)
        return super().__contains__(k)

    def keys(self):  # `KEY in param_dict.keys()` goes through __contains__ too
        return KeysView(self)


def deepspeed_check(config: dict):
    """(DeepSpeedConfig, unknown top-level keys). DeepSpeed validates nested sections strictly
    (pydantic, extra=forbid) but silently ignores unknown top-level keys; its known keys are the
    ones DeepSpeedConfig consults while parsing, recorded here."""
    from deepspeed.runtime.config import DeepSpeedConfig

    rec = _Recorder(copy.deepcopy(config))
    ds = DeepSpeedConfig(rec)
    return ds, sorted(set(config) - rec.seen)


@pytest.mark.parametrize("name,stage", [("zero2.json", 2), ("zero3.json", 3)])
def test_deepspeed_json_validates_with_deepspeedconfig(name, stage):
    pytest.importorskip("deepspeed", reason="deepspeed is not installed (make setup installs the [deepspeed] extra)")
    raw = json.loads((DS / name).read_text())
    with pytest.raises(Exception):  # the reason to substitute first: "auto" is not a number
        deepspeed_check(raw)
    ds, unknown = deepspeed_check(fill_auto(raw))
    assert unknown == [], f"{name}: top-level keys DeepSpeed does not know: {unknown}"
    assert ds.zero_optimization_stage == stage and ds.zero_enabled
    assert (ds.train_batch_size, ds.train_micro_batch_size_per_gpu, ds.gradient_accumulation_steps) == (8, 2, 4)
    assert ds.bfloat16_config.enabled and not ds.float16_config.enabled and ds.gradient_clipping == 1.0


def test_unknown_top_level_deepspeed_keys_are_caught_here_not_by_deepspeed():
    pytest.importorskip("deepspeed", reason="deepspeed is not installed (make setup installs the [deepspeed] extra)")
    cfg = fill_auto(json.loads((DS / "zero2.json").read_text()))
    typo = {**cfg, "zero_optimisation": {"stage": 3}, "gradient_clip": 1.0}
    ds, unknown = deepspeed_check(typo)  # DeepSpeed itself accepts it silently...
    assert ds.zero_optimization_stage == 2
    assert unknown == ["gradient_clip", "zero_optimisation"]  # ...our check does not
    nested = copy.deepcopy(cfg)
    nested["zero_optimization"]["overlap_comms"] = True
    with pytest.raises(Exception, match="overlap_comms"):  # nested sections: DeepSpeed's own check
        deepspeed_check(nested)


# ---------------------------------------------------------------------------------------------
# Real runs under accelerate launch
# ---------------------------------------------------------------------------------------------
def _launch(config: Path, script: Path, *args: str, timeout: int = 600, extra_env: dict | None = None):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        **(extra_env or {}),
    }
    cmd = [
        str(Path(sys.executable).parent / "accelerate"),
        "launch",
        "--config_file",
        str(config),
        "--main_process_port",
        "0",
        str(script),
        *args,
    ]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_two_cpu_processes_train_in_lockstep_under_accelerate_launch(tmp_path):
    """configs/accelerate/cpu_multiprocess.yaml really starts two gloo processes, and DDP keeps
    their weights identical through a few policy-gradient steps (tests/ddp_step.py)."""
    r = _launch(
        ACCEL / "cpu_multiprocess.yaml",
        REPO / "tests" / "ddp_step.py",
        str(tmp_path),
        timeout=300,
        extra_env={"ACCELERATE_USE_CPU": "true"},
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    reports = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert [x["world_size"] for x in reports] == [2, 2] and {x["backend"] for x in reports} == {"gloo"}
    assert all(x["identical_across_ranks"] for x in reports)
    assert reports[0]["pid"] != reports[1]["pid"]
    assert reports[0]["max_change"] == reports[1]["max_change"] > 0
    assert reports[0]["rewards"] != reports[1]["rewards"]  # each rank sampled its own tokens


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_zero_step_in_one_cpu_process(stage, tmp_path):
    """The shipped ZeRO-2/3 files drive a real DeepSpeed engine (one process, CPU); accelerate
    fills their "auto" values. Slow: the first DeepSpeed run compiles a shared-memory op."""
    pytest.importorskip("deepspeed", reason="deepspeed is not installed (make setup installs the [deepspeed] extra)")
    import yaml

    cfg = yaml.safe_load((ACCEL / f"deepspeed_zero{stage}.yaml").read_text())
    cfg["num_processes"] = 1
    cfg["deepspeed_config"]["deepspeed_config_file"] = str(DS / f"zero{stage}.json")
    one = tmp_path / "one.yaml"
    one.write_text(yaml.safe_dump(cfg))
    r = _launch(one, REPO / "tests" / "deepspeed_step.py", str(tmp_path), str(stage))
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    out = json.loads((tmp_path / f"zero{stage}.json").read_text())
    assert out["config"]["zero_optimization"]["stage"] == stage
    assert out["config"]["zero_optimization"]["reduce_bucket_size"] == 32 * 32  # hidden 32: filled by accelerate


# ---------------------------------------------------------------------------------------------
# The documented launch lines
# ---------------------------------------------------------------------------------------------
def test_every_accelerate_launch_line_in_the_cluster_readme_parses():
    """Each `accelerate launch ...` line of docs/clusters.md: accelerate's parser accepts it, its
    config file exists, and the command it runs is one our CLI parses."""
    from accelerate.commands.launch import launch_command_parser

    from goodhart.pipeline.cli.main import build_parser

    text = (REPO / "docs" / "clusters.md").read_text()
    lines = [l.strip() for l in re.findall(r"^\s*(?:\S+=\S+\s+)*(accelerate launch .+)$", text, re.M)]
    assert len(lines) >= 4, lines
    seen_configs = set()
    for line in lines:
        import shlex

        argv = shlex.split(line)[2:]
        args = launch_command_parser().parse_args(argv)
        assert args.config_file and (REPO / args.config_file).is_file(), line
        seen_configs.add(Path(args.config_file).name)
        assert args.module and args.training_script == "goodhart.pipeline.cli", line
        ns = build_parser().parse_args(args.training_script_args)
        assert ns.verb in ("run-point", "run"), line
    assert {"multi_gpu_ddp.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml"} <= seen_configs


# ---------------------------------------------------------------------------------------------
# The GPU-sized study: its sweep, its reward model, its SLURM array, its device
# ---------------------------------------------------------------------------------------------
def _smollm2_points():
    from goodhart.pipeline.sweeps.spec import expand, load_sweep

    sweep, base = load_sweep(configs_dir() / "sweep" / "smollm2_sentiment.yaml")
    return sweep, expand(sweep, base)


def test_smollm2_sentiment_is_the_one_gpu_study_the_docs_describe():
    """36 points on SmolLM2 (64 prompts x 256 samples of 48 tokens; PPO with LoRA, 200 steps of
    16 x 4), its learned proxy the one configs/rm/smollm2_sentiment.yaml trains, on any device."""
    from goodhart.pipeline.config.reward_model import load_rm_config
    from goodhart.pipeline.config.schema import HFReward

    _, points = _smollm2_points()
    assert len(points) == 36
    for p in points:
        c = p.cfg
        assert (c.model.name, c.model.device, c.prompts.n_eval) == ("smollm2-135m", "auto", 64)
        assert (c.sampling.n, c.sampling.max_new_tokens, c.sampling.engine) == (256, 48, "hf")
    ppo = [p.cfg.algo for p in points if p.cfg.algo.kind == "ppo"]
    assert len(ppo) == 6 and all(a.lora is not None and a.steps == 200 for a in ppo)
    assert {(a.batch_prompts, a.samples_per_prompt) for a in ppo} == {(16, 4)}
    learned = {p.cfg.reward.path for p in points if isinstance(p.cfg.reward, HFReward)}
    assert learned == {"runs/rm/smollm2-sent-10k"}
    rm = load_rm_config(configs_dir() / "rm" / "smollm2_sentiment.yaml", [])
    assert rm.name == "smollm2-sent-10k" and rm.reserve == 64  # holds out the sweep's eval prompts
    assert rm.policy.name == rm.backbone.name == "smollm2-135m" and rm.sampling.max_new_tokens == 48


def test_device_auto_takes_the_gpu_and_a_missing_gpu_is_one_line(monkeypatch):
    import torch

    from goodhart.pipeline.base.models import resolve_device
    from goodhart.pipeline.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda")


def test_the_studys_slurm_gpu_array(tmp_path, monkeypatch, capsys):
    """The documented SLURM line for the study: one array of 36 tasks, one GPU each, each point
    under the single-GPU accelerate config (one process, not on the CPU)."""
    from goodhart.pipeline.cli.main import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5001")
    argv = ["sweep", str(configs_dir() / "sweep" / "smollm2_sentiment.yaml"), "--backend", "slurm", "--dry-run"]
    argv += ["--gpus", "1", "--accelerate-config", "single_gpu", "--partition", "gpu", "--time", "04:00:00"]
    assert main([*argv, "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    sbatch = [l for l in out.splitlines() if l.startswith("sbatch ")]
    assert len(sbatch) == 1
    for part in ("--array=0-35", "--gres=gpu:1", "--partition=gpu", "--time=04:00:00"):
        assert part in sbatch[0].split(), sbatch[0]
    assert "GOODHART_NUM_PROCESSES=1" in out and "GOODHART_ACCELERATE_USE_CPU=false" in out
    assert not (tmp_path / "smollm2_sentiment").exists()  # a dry run writes nothing
