"""`python -m carbrands predict`: top-k brands per file or folder, bad files reported
without stopping the others, CSV output."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from carbrands.__main__ import main
from carbrands.data.prepared import load_split
from carbrands.models.inference import predict_probabilities
from tests.helpers import write_tiny

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["Alpha", "Beta Motors", "Gamma-Works", "Delta"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """An (untrained) model saved as the stages save it (carrying its classes), a copy
    saved without them, and image files: two PNG copies of test arrays (lossless, at the
    model's size) and a larger JPEG in a subfolder."""
    from carbrands.models import bundle

    root = tmp_path_factory.mktemp("predict")
    prepared = write_tiny(root / "prepared", CLASSES, {"test": 1}, image_size=32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(len(CLASSES), activation="softmax")])
    bundle.save_keras(model, root / "model.keras", bundle.make_info(CLASSES, 32, "pad"))
    model.save(root / "unlabelled.keras")
    test = load_split(prepared, "test")
    photos = root / "photos"
    (photos / "sub").mkdir(parents=True)
    Image.fromarray(np.asarray(test.images[0])).save(photos / "b.png")
    Image.fromarray(np.asarray(test.images[1])).save(photos / "a.png")
    Image.fromarray(np.asarray(test.images[2])).resize((120, 80)).save(photos / "sub/c.jpg")
    (photos / "notes.txt").write_text("not a photo, and not looked at in a folder")
    expected = predict_probabilities(model, test.images[:2])
    return {"root": root, "model": root / "model.keras", "unlabelled": root / "unlabelled.keras",
            "photos": photos, "expected": expected}


def _args(project, *extra):
    return ["predict", *map(str, extra), "--model", str(project["model"])]


def _parse(stdout: str) -> dict[str, list[tuple[str, float]]]:
    """{path: [(brand, probability), ...]} from the printed report."""
    out, current = {}, None
    for line in stdout.splitlines():
        if not line.startswith("  "):
            current = line
            out[current] = []
        else:
            rank, rest = line.strip().split(". ", 1)
            brand, percent = rest.rsplit(None, 1)
            assert int(rank) == len(out[current]) + 1
            out[current].append((brand.strip(), float(percent.rstrip("%")) / 100))
    return out


def test_prints_top_k_brands_per_file(project, capsys):
    files = [project["photos"] / "b.png", project["photos"] / "a.png"]
    assert main(_args(project, *files, "--top-k", "3")) == 0
    report = _parse(capsys.readouterr().out)
    assert list(report) == [str(f) for f in files]                      # command-line order
    for path, expected in zip(files, project["expected"]):
        ranked = report[str(path)]
        assert len(ranked) == 3 and {b for b, _ in ranked} <= set(CLASSES)
        probs = [p for _, p in ranked]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-3
        # the same brands and probabilities as the model gives the prepared array
        best = np.argsort(-expected)[:3]
        assert [b for b, _ in ranked] == [CLASSES[i] for i in best]
        assert probs == pytest.approx(expected[best], abs=6e-4)        # printed to 0.1 %


def test_a_folder_is_searched_recursively_in_sorted_order(project, capsys):
    assert main(_args(project, project["photos"], "--top-k", "9")) == 0
    report = _parse(capsys.readouterr().out)
    photos = project["photos"]
    assert list(report) == [str(photos / "a.png"), str(photos / "b.png"), str(photos / "sub/c.jpg")]
    assert all(len(r) == len(CLASSES) for r in report.values())         # top-k capped at the class count


def test_bad_files_are_reported_and_the_others_predicted(project, tmp_path, capsys):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("this is not a JPEG")
    good = project["photos"] / "a.png"
    code = main(_args(project, tmp_path / "empty.jpg", good, tmp_path / "text.jpg", tmp_path / "missing.jpg",
                      "--csv", tmp_path / "out.csv"))
    captured = capsys.readouterr()
    assert code != 0
    assert list(_parse(captured.out)) == [str(good)]
    err = captured.err.splitlines()
    assert any("empty.jpg" in line and "zero-byte" in line for line in err)
    assert any("text.jpg" in line and "not an image" in line for line in err)
    assert any("missing.jpg" in line and "no such file" in line for line in err)
    rows = pd.read_csv(tmp_path / "out.csv")
    assert list(rows.columns) == ["path", "rank", "brand", "probability"]
    assert list(rows["path"]) == [str(good)] * 3 and list(rows["rank"]) == [1, 2, 3]


def test_csv_holds_one_row_per_image_and_rank(project, tmp_path, capsys):
    assert main(_args(project, project["photos"], "--top-k", "2", "--csv", tmp_path / "p.csv")) == 0
    rows = pd.read_csv(tmp_path / "p.csv")
    assert len(rows) == 3 * 2 and set(rows["brand"]) <= set(CLASSES)
    assert (rows.groupby("path")["probability"].sum() <= 1 + 1e-6).all()
    printed = _parse(capsys.readouterr().out)
    for path, ranked in printed.items():
        mine = rows[rows["path"] == path]
        assert list(mine["brand"]) == [b for b, _ in ranked]


def test_missing_model_or_classes_is_one_line_and_exit_2(project, tmp_path, capsys):
    good = project["photos"] / "a.png"
    assert main(["predict", str(good), "--model", str(tmp_path / "none.keras")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none.keras is missing" in err
    # a Keras model saved without its class names (plain model.save)
    assert main(["predict", str(good), "--model", str(project["unlabelled"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "carries no class names" in err


@pytest.fixture(scope="module")
def bundled(project, tmp_path_factory):
    """The project's model saved as the stages save it (carrying its classes), and exported
    as a SavedModel and a TFLite file; nothing else beside them."""
    from carbrands.models import bundle, export

    root = tmp_path_factory.mktemp("bundled")
    model = keras.models.load_model(project["model"])
    info = bundle.make_info(CLASSES, 32, "pad")
    bundle.save_keras(model, root / "model.keras", info)
    export.write_saved_model(model, root / "saved_model", info)
    export.write_tflite(root / "saved_model", root / "model.tflite", info)
    return root


@pytest.mark.parametrize("form", ["model.keras", "saved_model", "model.tflite"])
def test_a_model_that_carries_its_classes_needs_nothing_else(project, bundled, form, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)    # no data/prepared and no params.yaml here
    files = [project["photos"] / "b.png", project["photos"] / "a.png"]
    assert main(["predict", *map(str, files), "--model", str(bundled / form)]) == 0
    report = _parse(capsys.readouterr().out)
    for path, expected in zip(files, project["expected"]):
        best = np.argsort(-expected)[:3]
        assert [b for b, _ in report[str(path)]] == [CLASSES[i] for i in best]
        assert [p for _, p in report[str(path)]] == pytest.approx(expected[best], abs=6e-4)


def test_bad_models_are_one_line_each_and_exit_2(project, bundled, tmp_path, capsys):
    import shutil

    good = str(project["photos"] / "a.png")
    (tmp_path / "notes.keras").write_text("not a model")
    (tmp_path / "notes.tflite").write_bytes(b"not a model either" * 10)
    (tmp_path / "folder").mkdir()
    shutil.copytree(bundled / "saved_model", tmp_path / "unlabelled")
    (tmp_path / "unlabelled/carbrands.json").unlink()
    for model, says in [("notes.keras", "not a readable Keras model"), ("notes.tflite", "not a readable TFLite"),
                        ("folder", "not a SavedModel"), ("unlabelled", "carries no class names")]:
        assert main(["predict", good, "--model", str(tmp_path / model)]) == 2, model
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err, err


@pytest.mark.slow
def test_command_line_exit_status_without_traceback(project, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    result = subprocess.run(
        [sys.executable, "-m", "carbrands", *_args(project, tmp_path / "broken.jpg", project["photos"] / "a.png")],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "broken.jpg" in result.stderr and str(project["photos"] / "a.png") in result.stdout


@pytest.mark.slow  # a pip install and a TensorFlow start, ~20 s
def test_the_installed_command_needs_only_the_model_file(project, tmp_path):
    """`pip install .` then `carbrands predict photo --model model.keras` in a folder that
    holds only the model file: no checkout, no params.yaml, no data/prepared. The package
    is installed without its dependencies (this venv has them) from a copy of exactly
    what the package is built from, so that no build files land in the checkout."""
    import shutil

    source, site, folder = tmp_path / "source", tmp_path / "site", tmp_path / "here"
    shutil.copytree(ROOT / "carbrands", source / "carbrands", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "requirements.txt"):
        shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(source)], check=True, capture_output=True, timeout=300)
    folder.mkdir()
    shutil.copy2(project["model"], folder / "cnn.keras")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    photo = project["photos"] / "a.png"
    result = subprocess.run([str(site / "bin" / "carbrands"), "predict", str(photo), "--model", "cnn.keras"],
                            cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert list(_parse(result.stdout)) == [str(photo)] and len(_parse(result.stdout)[str(photo)]) == 3
    assert sorted(p.name for p in folder.iterdir()) == ["cnn.keras"]
    # the command ran the installed package, not this checkout's
    where = subprocess.run([sys.executable, "-c", "import carbrands; print(carbrands.__file__)"], cwd=folder,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert Path(where.strip()).is_relative_to(site)
    # its declared dependencies are the runtime pins of requirements.txt
    metadata = next(site.glob("carbrands-*.dist-info")) / "METADATA"
    requires = [line.split(": ", 1)[1] for line in metadata.read_text().splitlines()
                if line.startswith("Requires-Dist")]
    pins = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert requires == pins and "pytest" not in " ".join(requires)


def test_the_pixel_limit_default_is_the_params_default():
    from carbrands import params
    from carbrands.data.names import MAX_IMAGE_PIXELS
    from carbrands.predict import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["x.jpg"]).max_pixels == MAX_IMAGE_PIXELS
    assert params.load(ROOT / "params.yaml")["data"]["max_image_pixels"] == MAX_IMAGE_PIXELS
