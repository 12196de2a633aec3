"""Group identity: a curve is everything but the knob (and the seed)."""

import pandas as pd

from goodhart.eval import metrics as M
from goodhart.eval.goodhart import label_points
from goodhart.pipeline.config.load import load_config
from goodhart.pipeline.sweeps.curves import curve_identity


def ident(*ov):
    return curve_identity(load_config(None, list(ov)))


def rows(ids, algo="bon"):
    """A tiny finished curve for each identity: two points along KL."""
    out = []
    for j, idt in enumerate(ids):
        for k, n in enumerate((1, 4)):
            out.append(
                {
                    "status": "done",
                    "point_id": f"p{j}-{k}",
                    "algo": algo,
                    "x_name": "n",
                    "x": n,
                    "error_law": "x",
                    M.KL: 0.6 * k,
                    M.GAIN_PROXY: k * 1.0,
                    M.GAIN_UTILITY: k * 0.5,
                    **idt,
                }
            )
    return pd.DataFrame(out)


def test_two_utility_scales_are_two_curves():
    a = ident("reward=distributional", "reward.utility.scale=0.5")
    b = ident("reward=distributional", "reward.utility.scale=2")
    assert a[M.CURVE_UTILITY] == "gaussian x0.5" and b[M.CURVE_UTILITY] == "gaussian x2"
    assert a[M.CURVE_PROXY] == "gaussian x0.5 + gaussian x1"
    assert label_points(rows([a, b]))["curve"].nunique() == 2


def test_two_checkpoints_with_different_weights_are_two_curves(tmp_path):
    for name, payload in (("rm_a", b"weights-a"), ("rm_b", b"weights-b"), ("rm_c", b"weights-a")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(payload)
    ids = [ident(f"reward={{type: hf, path: {tmp_path / n}}}", "utility=sentiment") for n in ("rm_a", "rm_b")]
    assert ids[0][M.CURVE_PROXY] != ids[1][M.CURVE_PROXY] and "@" in ids[0][M.CURVE_PROXY]
    assert label_points(rows(ids))["curve"].nunique() == 2
    # Same path, weights replaced: a different proxy.
    before = ident(f"reward={{type: hf, path: {tmp_path / 'rm_a'}}}", "utility=sentiment")[M.CURVE_PROXY]
    (tmp_path / "rm_a" / "model.safetensors").write_bytes(b"retrained")
    after = ident(f"reward={{type: hf, path: {tmp_path / 'rm_a'}}}", "utility=sentiment")[M.CURVE_PROXY]
    assert before != after
    # A checkpoint as the utility: two checkpoints are two utilities.
    u = [ident("reward=pareto", f"reward.utility={{type: hf, path: {tmp_path / n}}}") for n in ("rm_b", "rm_c")]
    assert u[0][M.CURVE_UTILITY] != u[1][M.CURVE_UTILITY]


def test_two_callables_are_two_curves_and_seeds_are_one():
    a = ident("reward={type: callable, target: 'pkg.mod:f'}", "utility=sentiment")
    b = ident("reward={type: callable, target: 'pkg.mod:g'}", "utility=sentiment")
    assert a[M.CURVE_PROXY] == "callable:pkg.mod:f" and a[M.CURVE_UTILITY] == "sentiment"
    assert label_points(rows([a, b]))["curve"].nunique() == 2
    s0, s1 = ident("reward=pareto", "seed=0"), ident("reward=pareto", "seed=1")
    assert s0 == s1
    df = rows([s0, s1]).assign(seed=[0, 0, 1, 1])
    lab = label_points(df)
    assert lab["curve"].nunique() == 1 and len(lab) == 2 and list(lab["n_seeds"]) == [2, 2]
    # The model and the prompts are part of the identity too.
    assert ident("prompts.n_eval=8")[M.CURVE_PROMPTS] != ident("prompts.n_eval=16")[M.CURVE_PROMPTS]
    assert ident("sampling.temperature=0.7")[M.CURVE_MODEL] != ident()[M.CURVE_MODEL]
