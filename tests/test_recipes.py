"""Both recipes end to end at their smoke size, each in its own process, as a user runs them."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_recipe(args, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MRRN_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def test_train_motion_smoke_writes_a_loadable_entry(tmp_path):
    from mrrn_keras import load_mrrn, variant_info

    out, entry = tmp_path / "run", tmp_path / "mrrn_tiny.smoke"
    run_recipe([str(ROOT / "recipes" / "train_motion.py"), "--smoke", f"--out={out}",
                f"--zoo_entry={entry}"], tmp_path)
    result = json.loads((out / "summary.json").read_text())
    # The library's finetune ran both models: its own outputs are there.
    shipped = json.loads((out / "seed0" / "mrrn" / "metrics.json").read_text())
    twin = json.loads((out / "seed0" / "twin" / "metrics.json").read_text())
    assert result["summary"]["mrrn"]["top1"]["values"] == [shipped["top1"]]
    assert result["summary"]["twin"]["top1"]["values"] == [twin["top1"]]
    assert shipped["train_videos"] > 0 and shipped["videos"] > 0
    info = variant_info(entry)
    assert info.metric("top1") == round(shipped["top1"], 4)
    assert info.input["height"] == 32 and info.input["frames"] == 4
    model = load_mrrn(entry)
    assert model.count_params() == info.params
    assert model.backbone.sru_layers == 2
    card = (entry / "card.md").read_text()
    assert "order-blind twin" in card and "seeds 0" in card


# tests/test_backends.py runs this smoke under JAX in the default tier.
@pytest.mark.slow
def test_finetune_smoke_over_two_seeds_writes_entries_and_a_summary(tmp_path):
    from mrrn_keras import load_mrrn

    out = tmp_path / "run"
    run_recipe([str(ROOT / "recipes" / "finetune.py"), "--smoke", "--variant",
                "mrrn_tiny.motion", f"--out_dir={out}", "--seeds=0,1"], tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    per_seed = [json.loads((out / f"seed{s}" / "metrics.json").read_text()) for s in (0, 1)]
    assert summary["seeds"] == [0, 1]
    assert summary["top1"]["values"] == [m["top1"] for m in per_seed]
    assert summary["top1"]["mean"] == pytest.approx(sum(m["top1"] for m in per_seed) / 2)
    for s, metrics in zip((0, 1), per_seed):
        (entry,) = (out / f"seed{s}" / "entry").iterdir()
        assert load_mrrn(entry).class_names == tuple(metrics["per_class"])
