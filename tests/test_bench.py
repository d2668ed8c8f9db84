"""Each benchmark runs once at --tiny sizes, so the scripts don't rot. Only that
they run and report sane figures is checked, never how fast anything is. These
run under `make test-bench` (and in CI), not `make test`: they check the tools that
measure the pipeline, not the pipeline. (bench/pipeline.py is run on the tiny repro,
in test_pipeline_e2e.py, under `make test`.)"""
import importlib.util
import sys

import pytest

from bench import _common
from tests.helpers import run_bench

pytestmark = pytest.mark.bench


def test_the_memory_sampler_sees_a_grandchild_s_peak(tmp_path):
    # a child that starts a grandchild holding 300 MB of anonymous memory for a second,
    # then frees it: the step's peaks count it, whichever process of the tree holds it
    grandchild = "import numpy as np, time; a = np.ones(300 * 2**20 // 8); time.sleep(1)"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}], check=True)"
    step = _common.run_measured("peak", [sys.executable, "-c", child], tmp_path)
    assert 300 <= step.tree_anon_mb < 600 and 300 <= step.tree_pss_mb < 600, step


def test_input_pipeline(tmp_path):
    stdout, result = run_bench("input_pipeline", tmp_path)
    approaches = [r["approach"] for r in result["rows"]]
    assert any("as the train stage" in a for a in approaches)
    assert all(r["images"] > 0 and r["images_per_second"] > 0 for r in result["rows"])
    if importlib.util.find_spec("tf_keras") is None:
        assert "notebook comparison skipped" in stdout and result["ratio"] is None
    else:
        assert any("ImageDataGenerator" in a for a in approaches)
        assert result["ratio"] > 0 and "ratio" in stdout


@pytest.mark.slow
def test_scale(tmp_path):
    stdout, result = run_bench("scale", tmp_path)
    steps = {s["name"]: s for s in result["steps"]}
    assert set(steps) == {"synthesize", "audit", "prepare@32", "train probe@32"}
    assert steps["prepare@32"]["images"] == 3 * (8 + 2 + 2)
    for s in steps.values():
        assert s["seconds"] > 0 and s["max_rss_mb"] > 0 and s["tree_pss_mb"] > 0, s
    (probe,) = result["training"]
    assert probe["size"] == 32 and probe["train_images"] == 24 and probe["steps_per_epoch"] == 1
    assert probe["epoch_seconds_estimate"] > 0 and "input_stall_percent" in probe
    assert "target prepare@32" in stdout and "input stall" in stdout


@pytest.mark.fixture
def test_real_photos(tmp_path, real_cars):
    stdout, result = run_bench("real_photos", tmp_path, str(real_cars))
    names = [s["name"] for s in result["stages"]]
    assert names == ["audit", "prepare", "pretrained", "transfer", "evaluate@transfer"]
    assert set(result["models"]) == {"transfer", "probe (frozen features)"}
    for scores in result["models"].values():
        low, high = scores["ci95"]
        assert low <= scores["accuracy"] <= high and 0 <= scores["macro_f1"] <= 1
    assert "Models (test split)" in stdout


def test_determinism(tmp_path):
    stdout, result = run_bench("determinism", tmp_path)
    rows = {(r["size"], r["op determinism"]): r for r in result["rows"]}
    assert set(rows) == {(32, "on"), (32, "off"), (32, "off, XLA forced")}
    assert all(r["images_per_second"] > 0 and r["min_ips"] <= r["images_per_second"] <= r["max_ips"]
               for r in rows.values())
    assert rows[(32, "on")]["XLA"] == "off" and rows[(32, "off, XLA forced")]["XLA"] == "on"
    assert rows[(32, "on")]["speed_vs_on"] == 1.0
    assert result["machine"]["cpu"] and "32 px: determinism off is" in stdout


def test_export_latency(tmp_path):
    stdout, result = run_bench("export_latency", tmp_path)
    assert [r["form"].split()[0] for r in result["rows"]] == ["keras", "SavedModel", "TFLite"]
    assert all(0 < r["median_ms"] <= r["p90_ms"] for r in result["rows"])
    assert "Latency per image, batch 1" in stdout


@pytest.mark.fixture
def test_transfer_choices(tmp_path, real_cars):
    # one variant, whose override shows in what ran (the defaults' transfer runs in the tiny repro)
    stdout, result = run_bench("transfer_choices", tmp_path, str(real_cars), "--only", "no fine-tuning")
    [row] = result["rows"]
    assert row["variant"] == "no fine-tuning" and row["epochs"]["fine_tune"] == 0 < row["epochs"]["head"]
    assert row["interpolate"] == 1   # random weights (--tiny): nothing to interpolate towards
    low, high = row["ci95"]
    assert 0 <= row["val_accuracy"] <= 1 and low <= row["accuracy"] <= high and row["transfer_seconds"] > 0
    assert "Transfer choices on" in stdout


@pytest.mark.fixture
def test_cnn_choices(tmp_path, real_cars):
    stdout, result = run_bench("cnn_choices", tmp_path, str(real_cars), "--only", "defaults")
    [row] = result["rows"]
    low, high = row["ci95"]
    assert row["variant"] == "defaults" and row["seen_px"] == 32 and row["epochs"] == 1
    assert 0 <= row["val_accuracy"] <= 1 and low <= row["accuracy"] <= high and row["train_seconds"] > 0
    assert "Cnn choices on" in stdout


@pytest.mark.fixture
@pytest.mark.slow
def test_audit_copies(tmp_path, stanford):
    stdout, result = run_bench("audit_copies", tmp_path, str(stanford))
    by_kind = result["scores"]["by_kind"]
    assert set(by_kind) == {"reencoded", "resized", "cropped", "watermarked", "colour_shifted", "mirrored"}
    assert all(k["planted"] == 2 for k in by_kind.values())
    for t in result["timing"].values():
        assert t["inspect_ms_per_image"] > 0 and t["check_ms_per_candidate"] > 0 and t["estimate_seconds"] > 0
    assert "precision" in stdout and "gap" in stdout and (tmp_path / "audit_copies_pairs-tiny.png").is_file()


def test_backbone_speed(tmp_path):
    stdout, result = run_bench("backbone_speed", tmp_path, "--deterministic")
    [row] = result["rows"]
    assert row["backbone"] == "efficientnet_lite0" and row["fine_tuned_from"] == "all" and result["deterministic"]
    assert row["forward_images_per_s"] > 0 and row["train_images_per_s"] > 0 and row["trainable_params"] > 3e6
    assert "op determinism on" in stdout


def test_cpu_precision(tmp_path):
    stdout, result = run_bench("cpu_precision", tmp_path)
    assert [row["model"] for row in result["rows"]] == ["cnn", "efficientnet_lite0"]
    for row in result["rows"]:
        assert row["float32_images_per_s"] > 0 and row["mixed_bfloat16_images_per_s"] > 0
        assert row["bf16_speedup"] == pytest.approx(
            row["mixed_bfloat16_images_per_s"] / row["float32_images_per_s"], abs=0.02)
    assert "cpu_flags" in stdout and result["size"] == 32
