"""Every shell command in README.md and the docs site (docs/*.md) is run here, so the docs cannot drift.

Each command the docs show maps to what the test runs: the command itself, or a tiny variant
(the same verb and arguments plus overrides that make it small: a small model, a few prompts,
one PPO step), or, where the real one needs hardware this machine lacks (GPUs, a SLURM
cluster), its dry run / syntax check. A command added to the docs without an entry here fails
`test_every_documented_command_has_a_variant`.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Overrides that make an LM run tiny ({model} is the small test model).
LM = "model.path={model} prompts.n_eval=2 prompts.n_train=2 sampling.max_new_tokens=4 eval.n_examples=0"
PPO = "algo.steps=1 algo.batch_prompts=2 algo.samples_per_prompt=2 algo.minibatch=4 algo.eval_samples=2"
CAL = "reward.error.calibration_samples=64"
DIST = "--jobs 1 sampling.n=16384 prompts.n_eval=4"  # one process: the worker pool is tested elsewhere
NO_ROUNDS = "eval.resolve.budget=0 eval.resolve.draws=0"  # the demo's resolve rounds: tests/test_resolve.py
SLURM_ENV = "MLFLOW_TRACKING_URI=http://127.0.0.1:5001"
PROBE = (
    "model.path={model} probe.n_samples=600 probe.base_reference=64 probe.search.steps=3 "
    "probe.search.candidates=16 probe.search.restarts=1"
)
RM = 'reward="{{type: hf, path: rm}}"'
GPU = "launch config exists; its loader is tested in tests/test_launch_configs.py; the point entry parses"

# documented command -> what runs (in this order, in one working directory: a command comes after
# the ones whose outputs it reads; "$ " lines expect rc 2)
VARIANTS: dict[str, str] = {
    # README.md, docs/index.md: the two commands
    "make demo": "make -n -C {repo} demo",
    "make test": "make -n -C {repo} test",
    # docs/results.md: the SmolLM2 study (~45 min; its configs: tests/test_smollm2_study.py)
    "make smollm2-study": "make -n -C {repo} smollm2-study",
    # docs/usage.md, docs/index.md, README.md: using it
    ". .venv/bin/activate": "test -f {repo}/.venv/bin/activate",
    "goodhart prepare": "goodhart prepare --help",  # builds the 0.94M model (~80 s); tiny variant: the small model below
    "goodhart config show configs/base.yaml reward=pareto algo.kl.coef=0.1": "goodhart config show {repo}/configs/base.yaml reward=pareto algo.kl.coef=0.1",
    "goodhart run configs/base.yaml reward=student_t algo=bon algo.n=16": f"goodhart run {{repo}}/configs/base.yaml reward=student_t algo=bon algo.n=16 sampling.n=16 {LM}",
    "goodhart sweep configs/sweep/demo.yaml --jobs 2": f"goodhart sweep {{repo}}/configs/sweep/demo.yaml --jobs 2 --quiet {NO_ROUNDS} {LM} {CAL}",
    "goodhart status runs/demo": "goodhart status runs/demo",
    "goodhart report runs/demo": "goodhart report runs/demo",
    "goodhart tails errors.npy": "goodhart tails errors.npy",
    # the tail estimators need thousands of samples: the demo's own 32 x 256, from the small model
    "goodhart tails --reward configs/base.yaml reward=pareto": "goodhart tails --reward {repo}/configs/base.yaml reward=pareto model.path={model} prompts.n_train=2 sampling.max_new_tokens=8",
    "goodhart ui": "goodhart ui --help",  # a server; not started here
    "$ goodhart run configs/base.yaml reward.error.law.alhpa=2": "goodhart run {repo}/configs/base.yaml reward.error.law.alhpa=2",
    # docs/usage.md: distributional
    "goodhart sweep configs/sweep/distributional.yaml": f"goodhart sweep {{repo}}/configs/sweep/distributional.yaml --quiet {DIST}",
    'goodhart sweep configs/sweep/distributional.yaml reward.error="pareto(alpha=1.2)" reward.utility="gaussian(scale=0.5)"': f'goodhart sweep {{repo}}/configs/sweep/distributional.yaml --quiet reward.error="pareto(alpha=1.2)" reward.utility="gaussian(scale=0.5)" {DIST}',
    # docs/usage.md, README.md: trained policies
    "goodhart run configs/base.yaml algo=ppo reward=pareto reward.error.mode=feature algo.kl.coef=0.03": f"goodhart run {{repo}}/configs/base.yaml algo=ppo reward=pareto reward.error.mode=feature algo.kl.coef=0.03 {LM} {PPO} {CAL} sampling.n=8",
    "goodhart sweep configs/sweep/rl_goodhart.yaml": f"goodhart sweep {{repo}}/configs/sweep/rl_goodhart.yaml --quiet algo.kl.target=2 {LM} {PPO} {CAL} sampling.n=8",
    "goodhart report runs/rl_goodhart": "goodhart report runs/rl_goodhart --no-mlflow",
    # docs/clusters.md: clusters (no SLURM here: the dry run prints the script and the sbatch line)
    "goodhart server --port 5001 --backend-store-uri sqlite:////shared/goodhart/mlflow.db &": "goodhart server --help",
    "export MLFLOW_TRACKING_URI=http://127.0.0.1:5001": "export MLFLOW_TRACKING_URI=http://127.0.0.1:5001",
    "goodhart sweep configs/sweep/rl_goodhart.yaml --backend slurm --dry-run": f"{SLURM_ENV} goodhart sweep {{repo}}/configs/sweep/rl_goodhart.yaml --backend slurm --dry-run",
    "goodhart sweep configs/sweep/rl_goodhart.yaml --backend slurm": f"{SLURM_ENV} goodhart sweep {{repo}}/configs/sweep/rl_goodhart.yaml --backend slurm --dry-run",
    "goodhart status runs/rl_goodhart": "goodhart status runs/rl_goodhart",
    "goodhart sweep configs/sweep/rl_goodhart.yaml --backend slurm --resume": f"{SLURM_ENV} goodhart sweep {{repo}}/configs/sweep/rl_goodhart.yaml --backend slurm --resume --dry-run",
    # docs/clusters.md: launch lines (GPUs and a SLURM cluster: checks that need neither)
    "accelerate launch --config_file configs/accelerate/multi_gpu_ddp.yaml -m goodhart.pipeline.cli run my_run.yaml seed=1": f"test -f {{repo}}/configs/accelerate/multi_gpu_ddp.yaml && goodhart run --help  # {GPU}",
    "accelerate launch --config_file configs/accelerate/multi_gpu_ddp.yaml -m goodhart.pipeline.cli run-point runs/my_sweep 3": f"test -f {{repo}}/configs/accelerate/multi_gpu_ddp.yaml && goodhart run-point --help  # {GPU}",
    "accelerate launch --config_file configs/accelerate/deepspeed_zero2.yaml -m goodhart.pipeline.cli run my_run.yaml": f"test -f {{repo}}/configs/accelerate/deepspeed_zero2.yaml && goodhart run --help  # {GPU}",
    "accelerate launch --config_file configs/accelerate/deepspeed_zero3.yaml -m goodhart.pipeline.cli run-point runs/my_sweep 3": f"test -f {{repo}}/configs/accelerate/deepspeed_zero3.yaml && goodhart run-point --help  # {GPU}",
    "ACCELERATE_USE_CPU=true OMP_NUM_THREADS=1 accelerate launch --config_file configs/accelerate/cpu_multiprocess.yaml -m goodhart.pipeline.cli run-point runs/my_sweep 3": "test -f {repo}/configs/accelerate/cpu_multiprocess.yaml && accelerate launch --help > /dev/null  # the real 2-process launch: tests/test_trl_trainers.py, tests/ddp_step.py",
    "goodhart server --host 0.0.0.0 --port 5000": "goodhart server --help",
    "export MLFLOW_TRACKING_URI=http://login1.cluster:5000": "export MLFLOW_TRACKING_URI=http://login1.cluster:5000",
    "goodhart sweep configs/sweep/my_sweep.yaml --backend slurm --dry-run": f"{SLURM_ENV} goodhart sweep my_sweep.yaml --backend slurm --dry-run",
    "goodhart sweep configs/sweep/my_sweep.yaml --backend slurm": f"{SLURM_ENV} goodhart sweep my_sweep.yaml --backend slurm --dry-run",
    "goodhart sweep configs/sweep/my_sweep.yaml --backend slurm --partition debug --time 00:30:00 --max-concurrent 2 --sbatch-arg=--exclusive": f"{SLURM_ENV} goodhart sweep my_sweep.yaml --backend slurm --partition debug --time 00:30:00 --max-concurrent 2 --sbatch-arg=--exclusive --dry-run",
    "goodhart status runs/my_sweep": "goodhart status runs/demo",  # a written sweep directory
    "goodhart sweep configs/sweep/my_sweep.yaml --backend slurm --resume": f"{SLURM_ENV} goodhart sweep my_sweep.yaml --backend slurm --resume --dry-run",
    "sbatch --array=0-3 --partition=debug slurm/sweep_array.sbatch runs/my_sweep": "bash -n {repo}/slurm/sweep_array.sbatch",
    # docs/clusters.md: the SmolLM2 study on GPUs (no GPU here: the benchmark's refusal, dry runs, --help)
    'make setup TORCH_SPEC="torch==2.13.0"': 'make -n -C {repo} setup TORCH_SPEC="torch==2.13.0"',
    ".venv/bin/python benchmarks/run_all.py --quick --device cuda --out benchmarks/results/gpu": f"{sys.executable} {{repo}}/benchmarks/run_all.py --smoke --only generation --device cuda --out gpu || test $? -eq 2 -a ! -e gpu  # no GPU: one line, exit 2, nothing measured",
    "goodhart sweep configs/sweep/smollm2_sentiment.yaml model.device=cuda": "goodhart sweep {repo}/configs/sweep/smollm2_sentiment.yaml model.device=cuda --dry-run  # sized for one GPU",
    "export GOODHART_CACHE=/shared/goodhart-cache": "test -n /shared/goodhart-cache  # a shared disk, not here",
    "goodhart sweep configs/sweep/smollm2_sentiment.yaml --only algo=tilt": "goodhart sweep {repo}/configs/sweep/smollm2_sentiment.yaml --only algo=tilt --dry-run",
    "goodhart sweep configs/sweep/smollm2_sentiment.yaml --backend slurm --gpus 1 --accelerate-config single_gpu --partition gpu --time 04:00:00": f"{SLURM_ENV} goodhart sweep {{repo}}/configs/sweep/smollm2_sentiment.yaml --backend slurm --gpus 1 --accelerate-config single_gpu --partition gpu --time 04:00:00 --dry-run",
    "goodhart status runs/smollm2_sentiment": "goodhart status --help  # the GPU study's directory is not here",
    "goodhart sweep configs/sweep/smollm2_sentiment.yaml sampling.engine=vllm": "goodhart sweep {repo}/configs/sweep/smollm2_sentiment.yaml sampling.engine=vllm --dry-run  # vLLM and a GPU: not here",
    # docs/usage.md: partial sweeps and export (after the demo variant above has run)
    "goodhart sweep configs/sweep/demo.yaml --only algo=bon": f"goodhart sweep {{repo}}/configs/sweep/demo.yaml --only algo=bon --quiet {NO_ROUNDS} {LM} {CAL}",
    "goodhart sweep configs/sweep/demo.yaml --branch ppo algo.steps=10": f"goodhart sweep {{repo}}/configs/sweep/demo.yaml --branch ppo --quiet {NO_ROUNDS} {LM} {PPO} {CAL}",
    "goodhart export runs/demo/points/<id> my_policy": 'd=$(dirname "$(ls -d runs/demo/points/*/checkpoints | head -1)") && goodhart export "$d" my_policy',
    "goodhart export runs/demo/points/<id> my_adapter --keep-adapter": "goodhart export --help  # a LoRA point kept as an adapter: tests/test_export.py",
    # docs/probe.md: reward-model tail probe (a small RM on the small model, a short search)
    "python tests/probe_rm.py rm": f"{sys.executable} {{repo}}/tests/probe_rm.py rm --base {{model}} --samples 256 --steps 20",
    'goodhart probe configs/base.yaml "reward={type: hf, path: rm}" name=sentiment-rm --mode random': f"goodhart probe {{repo}}/configs/base.yaml {RM} name=sentiment-rm --mode random {PROBE}",
    'goodhart probe configs/base.yaml "reward={type: hf, path: rm}" name=sentiment-rm --mode base': f"goodhart probe {{repo}}/configs/base.yaml {RM} name=sentiment-rm --mode base {PROBE}",
    'goodhart probe configs/base.yaml "reward={type: hf, path: rm}" name=sentiment-rm --mode optimize': f"goodhart probe {{repo}}/configs/base.yaml {RM} name=sentiment-rm --mode optimize {PROBE}",
    "goodhart report runs/probe-sentiment-rm": "goodhart report runs/probe-sentiment-rm --no-mlflow",
    "goodhart probe rm7b.yaml --mode random   --probe-config rm7b_gpu": "test -f {repo}/configs/probe/rm7b_gpu.yaml && goodhart probe --help  # a 7B reward model on a GPU: not on this machine",
    "goodhart probe rm7b.yaml --mode base     --probe-config rm7b_gpu": "test -f {repo}/configs/probe/rm7b_gpu.yaml && goodhart probe --help  # a 7B reward model on a GPU: not on this machine",
    "goodhart probe rm7b.yaml --mode optimize --probe-config rm7b_gpu": "test -f {repo}/configs/probe/rm7b_gpu.yaml && goodhart probe --help  # a 7B reward model on a GPU: not on this machine",
    # docs/alarm.md: the gold-free alarm (runs/distributional is the distributional variant's)
    "goodhart alarm-bench --family small-pool --seeds 2": "goodhart alarm-bench --family small-pool --seeds 2",  # a look: 2 curves
    # docs/holdout.md: the held-out proxy (a small distributional sweep; the bench's halves take minutes:
    # a small family of them runs in tests/test_holdout.py; train-rm shards on the small model)
    "goodhart sweep configs/sweep/distributional.yaml eval.holdout=independent --output runs/holdout": f"goodhart sweep {{repo}}/configs/sweep/distributional.yaml --quiet eval.holdout=independent --output runs/holdout {DIST}",
    "goodhart report runs/holdout/distributional": "goodhart report runs/holdout/distributional --no-mlflow",
    "goodhart holdout-bench --half dev": "goodhart holdout-bench --help  # the dev families: ~140 points, minutes",
    "goodhart holdout-bench --half test": "goodhart holdout-bench --help  # the test families: ~300 points, read once",
    "goodhart holdout-eval runs/holdout_dev": "goodhart holdout-eval runs/holdout/distributional",
    "goodhart holdout-bench --coverage 40": "goodhart holdout-bench --help  # 40 pools x 5 laws: minutes; tests/test_holdout.py runs a small one",
    "goodhart train-rm configs/rm/sentiment.yaml shards=2 shard=0 seed=0 --out runs/rm/sent-a": 'goodhart train-rm {repo}/configs/rm/sentiment.yaml shards=2 shard=0 seed=0 n_pairs=32 policy.path={model} backbone.path={model} sampling.n=8 sampling.max_new_tokens=16 heldout_prompts=4 training.epochs=1 --out runs/rm/sent-a "gold={{type: keyword, words: [was, the, and]}}"',
    "goodhart train-rm configs/rm/sentiment.yaml shards=2 shard=1 seed=1 --out runs/rm/sent-b": 'goodhart train-rm {repo}/configs/rm/sentiment.yaml shards=2 shard=1 seed=1 n_pairs=32 policy.path={model} backbone.path={model} sampling.n=8 sampling.max_new_tokens=16 heldout_prompts=4 training.epochs=1 --out runs/rm/sent-b "gold={{type: keyword, words: [was, the, and]}}"',
    "goodhart run configs/base.yaml reward='{type: hf, path: runs/rm/sent-a}' utility=sentiment eval.holdout='{type: hf, path: runs/rm/sent-b}'": f"goodhart run {{repo}}/configs/base.yaml reward='{{{{type: hf, path: runs/rm/sent-a}}}}' utility=sentiment eval.holdout='{{{{type: hf, path: runs/rm/sent-b}}}}' sampling.n=16 {LM}",
    # docs/learned-rm.md, docs/usage.md: learned reward models (a tiny RM on the small model) and SmolLM2
    "goodhart train-rm configs/rm/sentiment.yaml name=sent-3k n_pairs=3000 --out runs/rm/sent-3k": 'goodhart train-rm {repo}/configs/rm/sentiment.yaml name=sent-3k n_pairs=32 policy.path={model} backbone.path={model} sampling.n=8 sampling.max_new_tokens=16 heldout_prompts=4 training.epochs=1 --out runs/rm/sent-3k "gold={{type: keyword, words: [was, the, and]}}"  # the small test model writes near-gibberish: VADER ties on most pairs',
    "goodhart run configs/base.yaml reward='{type: hf, path: runs/rm/sent-3k}' utility=sentiment algo.kl.coef=0.25": f"goodhart run {{repo}}/configs/base.yaml reward='{{{{type: hf, path: runs/rm/sent-3k}}}}' utility=sentiment algo.kl.coef=0.25 sampling.n=16 {LM}",
    "goodhart sweep configs/sweep/smollm2_smoke.yaml": "goodhart sweep {repo}/configs/sweep/smollm2_smoke.yaml --quiet",
    "goodhart train-rm configs/rm/smollm2_sentiment.yaml --out runs/rm/smollm2-sent-10k": "test -f {repo}/configs/rm/smollm2_sentiment.yaml && goodhart train-rm --help  # SmolLM2 on a GPU: sized for one, not run here",
    "goodhart sweep configs/sweep/smollm2_sentiment.yaml": "goodhart sweep {repo}/configs/sweep/smollm2_sentiment.yaml --dry-run  # sized for one GPU",
    "goodhart report runs/smollm2_sentiment": "goodhart report runs/smollm2_smoke --no-mlflow  # the smoke variant's report",
    # docs/plugins.md: the callable saved as my_reward.py (the slow test writes the page's snippet)
    'goodhart run configs/base.yaml reward=pareto "reward.utility={type: callable, target: my_reward:score}" algo=bon algo.n=4': f'goodhart run {{repo}}/configs/base.yaml reward=pareto "reward.utility={{{{type: callable, target: my_reward:score}}}}" algo=bon algo.n=4 sampling.n=8 {LM}',
    # docs/index.md: the docs site itself (tests/test_docs.py builds it too)
    # docs/integrations.md: the TRL example and the converters (run for real, on the small model and
    # on hand-written dumps, in tests/test_integrations_trl.py and tests/test_examples*.py): their CLIs here
    # docs/alarm.md: reads finished PPO sweeps (slow to make); its CLI here
    "python examples/alarm_base_noise.py runs/alarm_bench_ppo runs/alarm_trained": "python {repo}/examples/alarm_base_noise.py --help",
    "python examples/grpo_with_alarm.py --model PATH_OR_HUB_ID --steps 50 --stop": "python {repo}/examples/grpo_with_alarm.py --help",
    "python examples/grpo_with_alarm.py --model PATH_OR_HUB_ID --steps 50 --light": "python {repo}/examples/grpo_with_alarm.py --help",
    "goodhart analyze examples/samples/tiny_run.csv --out runs/tiny_run_analysis": "goodhart analyze {repo}/examples/samples/tiny_run.csv --out runs/tiny_run_analysis",
    "python examples/convert_dumps.py verl VAL_DIR --proxy score --gold acc --kl kl.csv --out samples.csv": "python {repo}/examples/convert_dumps.py --help",
    "goodhart analyze samples.csv": "cp {repo}/examples/samples/tiny_run.csv samples.csv && goodhart analyze samples.csv",
    "python examples/convert_dumps.py openrlhf DUMP_DIR --proxy reward --gold gold_reward --kl kl.csv --out samples.csv": "python {repo}/examples/convert_dumps.py --help",
    # the plug-in package is pip-installed and run by name in the slow test of tests/test_examples*.py
    "pip install examples/reward_plugin": "test -f {repo}/examples/reward_plugin/pyproject.toml",
    "goodhart run examples/reward_plugin/run.yaml": "test -f {repo}/examples/reward_plugin/run.yaml",
    # docs/arena.md: the arena (thousands of points): one law, one seed, two columns at N = 4,096
    # here; tests/test_arena.py runs a cut-down grid end to end too
    "goodhart sweep configs/sweep/arena.yaml": "goodhart sweep {repo}/configs/sweep/arena.yaml --quiet --only reward.error=gaussian --only seed=0 --only sampling.n=4096 --branch kl --branch chi2",
    "goodhart report runs/arena": "goodhart report runs/arena",
    "goodhart sweep configs/sweep/arena.yaml --quick": "goodhart sweep {repo}/configs/sweep/arena.yaml --quick --dry-run",
    "goodhart report runs/arena_quick": "goodhart report --help",
    "goodhart sweep configs/sweep/arena_text.yaml": "goodhart sweep {repo}/configs/sweep/arena_text.yaml --dry-run",
    "goodhart report runs/arena_text": "goodhart report --help",
    "goodhart sweep configs/sweep/arena_rl.yaml": "goodhart sweep {repo}/configs/sweep/arena_rl.yaml --dry-run",
    "goodhart report runs/arena_rl": "goodhart report --help",
    "mkdocs build --strict": 'mkdocs build --strict -f {repo}/mkdocs.yml -d "$PWD/site"',  # -d is read from the config file's folder
    # docs/development.md: results tables from stored runs (snapshot and write change the repo's docs: their --help)
    "python docs/tables.py snapshot runs/smollm2_smoke configs/sweep/smollm2_smoke.yaml --load 1.0,1.2 --wall 40": "python {repo}/docs/tables.py snapshot --help",
    "python docs/tables.py write": "python {repo}/docs/tables.py write --help",
    "python docs/tables.py check": "python {repo}/docs/tables.py check",
    # docs/development.md: tests
    ".venv/bin/python -m pytest -q tests/test_ppo_loss.py": f"{sys.executable} -m pytest -q -p no:cacheprovider {{repo}}/tests/test_ppo_loss.py",
}


def _strip_comment(line: str) -> str:
    return re.sub(r"\s+#\s.*$", "", line).strip()


DOCS = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]


def _fenced_blocks(text: str) -> list[tuple[str, list[str]]]:
    """(language, lines) of each fenced block, indented ones (inside list items) included; the
    fence's own indentation is taken off its lines, the code's is kept."""
    blocks, lang, indent, body = [], None, 0, []
    for line in text.splitlines():
        m = re.match(r"^(\s*)```(\w*)\s*$", line)
        if lang is None and m:
            lang, indent, body = m.group(2), len(m.group(1)), []
        elif lang is not None and re.match(r"^\s*```\s*$", line):
            blocks.append((lang, body))
            lang = None
        elif lang is not None:
            body.append(line[indent:] if not line[:indent].strip() else line.lstrip())
    return blocks


def documented_commands(files: list[str] = DOCS) -> list[str]:
    """Commands in the ```bash blocks (and the `$ goodhart` example lines of plain or text blocks)
    of README.md and docs/*.md, in order; `a && b` counts as two."""
    out: list[str] = []
    for name in files:
        for lang, body in _fenced_blocks((REPO / name).read_text()):
            for line in body:
                line = _strip_comment(line.strip())
                if lang == "bash" and line and not line.startswith("#"):
                    out += [c.strip() for c in line.split("&&")]
                elif lang in ("", "text", "console") and line.startswith("$ goodhart"):
                    out.append(line)
    return list(dict.fromkeys(out))


def plugin_snippet() -> str:
    """The `my_reward.py` that docs/plugins.md tells the reader to save (its first python block)."""
    blocks = [body for lang, body in _fenced_blocks((REPO / "docs" / "plugins.md").read_text()) if lang == "python"]
    return "\n".join(blocks[0]) + "\n"


MY_SWEEP = """\
name: my_sweep
base: {repo}/configs/base.yaml
set: {{reward: distributional, sampling.n: 256, prompts.n_eval: 4}}
grid: {{algo.kl.coef: [10, 3, 1, 0.3]}}
slurm: {{partition: gpu, time: "04:00:00", max_concurrent: 4}}
"""


def test_every_documented_command_has_a_variant():
    cmds = documented_commands()
    assert len(cmds) >= 30, cmds
    missing = [c for c in cmds if c not in VARIANTS]
    assert not missing, f"documented commands with no tested variant in {__file__}: {missing}"


def test_no_variant_outlives_its_command():
    """A command removed from the docs takes its variant with it (no stale entries)."""
    stale = [c for c in VARIANTS if c not in documented_commands()]
    assert not stale, f"variants whose command no page shows any more: {stale}"


def test_the_parser_reads_indented_blocks_and_example_lines(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text(
        "1. step\n\n   ```bash\n   goodhart status runs/x   # why\n   ```\n\n"
        "```text\n$ goodhart run a.yaml bad=1\nerror line\n```\n\n```python\nimport goodhart\n```\n"
        "```bash\nmake a && make b\n```\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert documented_commands(["page.md"]) == [
        "goodhart status runs/x",
        "$ goodhart run a.yaml bad=1",
        "make a",
        "make b",
    ]


def test_the_plugin_snippet_is_a_reward():
    ns: dict = {}
    exec(plugin_snippet(), ns)
    assert ns["score"](["p", "p"], ["a!!", "b"]) == [2, 0]


@pytest.mark.slow
def test_every_documented_command_runs(tmp_path, small_model_dir):
    (tmp_path / "my_sweep.yaml").write_text(MY_SWEEP.format(repo=REPO))
    (tmp_path / "my_reward.py").write_text(plugin_snippet())
    np.save(tmp_path / "errors.npy", np.random.default_rng(0).pareto(1.5, 5000))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    failures = []
    # In VARIANTS' order, which puts each command after those it needs (the demo sweep before its
    # report); the fast tests keep VARIANTS' keys equal to the documented commands.
    assert set(documented_commands()) <= set(VARIANTS)
    for doc in VARIANTS:
        variant = VARIANTS[doc].format(repo=REPO, model=small_model_dir)
        want = 2 if doc.startswith("$ ") else 0
        r = subprocess.run(["bash", "-c", variant], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        if r.returncode != want:
            failures.append(f"{doc!r} -> {variant!r}: rc {r.returncode}\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}")
    assert not failures, "\n\n".join(failures)
    assert (tmp_path / "runs" / "demo" / "report" / "report.md").is_file()
    assert (tmp_path / "runs" / "rl_goodhart" / "report" / "report.md").is_file()


def test_readme_distributional_overrides_run(in_tmp):
    """The fast part: the distributional commands of docs/usage.md, in process (a few seconds)."""
    from goodhart.pipeline.cli.main import main

    for doc in (
        "goodhart sweep configs/sweep/distributional.yaml",
        'goodhart sweep configs/sweep/distributional.yaml reward.error="pareto(alpha=1.2)" reward.utility="gaussian(scale=0.5)"',
    ):
        argv = shlex.split(VARIANTS[doc].format(repo=REPO))[1:] + ["tracking.enabled=false"]
        assert main(argv) == 0, doc
    assert main(["report", "runs/distributional", "--no-mlflow"]) == 0
