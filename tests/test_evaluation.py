"""Test-set evaluation: metrics that agree with each other, the stage's outputs, Grad-CAM
on plain and nested (backbone-in-model) models."""
import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from carbrands.data.prepared import load_classes, load_split
from carbrands.errors import DataError, UserError
from carbrands.evaluation import figures, gradcam, scores
from carbrands.models import inference
from tests.helpers import write_tiny

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["Alpha", "Beta Motors", "Gamma-Works"]
SIZE = 32


def plain_model() -> keras.Model:
    return keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Rescaling(1 / 255),
                             keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(len(CLASSES), activation="softmax")])


def nested_model() -> keras.Model:
    """A backbone sub-model inside the model, as keras.applications backbones are usually used."""
    inner_in = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="block1_conv")(inner_in)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="block2_conv")(x)
    backbone = keras.Model(inner_in, x, name="backbone")
    inputs = keras.Input((SIZE, SIZE, 3))
    y = backbone(keras.layers.Rescaling(1 / 255)(inputs))
    y = keras.layers.GlobalAveragePooling2D()(y)
    return keras.Model(inputs, keras.layers.Dense(len(CLASSES), activation="softmax")(y))


def fitted(build, prepared: Path, path: Path) -> keras.Model:
    """A tiny model trained briefly and saved, then loaded back as the stages would."""
    keras.utils.set_random_seed(1)
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    train = load_split(prepared, "train")
    model.fit(np.asarray(train.images, np.float32), train.labels, epochs=2, batch_size=16, verbose=0)
    model.save(path)
    return inference.load_model(path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    prepared = write_tiny(root / "prepared", CLASSES, {"train": 24, "val": 8, "test": 8}, image_size=SIZE)
    return root, prepared, fitted(plain_model, prepared, root / "plain.keras")


def test_metrics_agree_with_each_other(setup):
    _, prepared, model = setup
    test = load_split(prepared, "test")
    metrics, per_class, confusion, probs = scores.evaluate_split(
        model, test.images, test.labels, CLASSES, bootstrap=200, seed=0)

    assert metrics["n_test"] == len(test) == len(confusion) == len(probs)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    # accuracy is the diagonal share of the confusion rows
    assert metrics["accuracy"] == pytest.approx((confusion["actual"] == confusion["predicted"]).mean())
    assert metrics["accuracy_ci95_low"] <= metrics["accuracy"] <= metrics["accuracy_ci95_high"]
    assert metrics["top3_accuracy"] >= metrics["accuracy"]
    # the loss is Keras' own sparse categorical cross-entropy
    keras_loss = keras.losses.SparseCategoricalCrossentropy()(test.labels, probs.astype(np.float32))
    assert metrics["test_loss"] == pytest.approx(float(keras_loss), rel=1e-4)
    # per-class recall is each class's diagonal share; supports add up; macro F1 is their mean
    assert list(per_class["class"]) == CLASSES and per_class["support"].sum() == len(test)
    for name, recall in zip(per_class["class"], per_class["recall"]):
        mine = confusion[confusion["actual"] == name]
        assert recall == pytest.approx((mine["predicted"] == name).mean())
    assert metrics["macro_f1"] == pytest.approx(per_class["f1"].mean())
    assert set(confusion["actual"]) <= set(CLASSES) and set(confusion["predicted"]) <= set(CLASSES)


def test_top_k_and_cross_entropy_by_hand():
    probs = np.array([[0.5, 0.3, 0.2, 0.0], [0.1, 0.2, 0.3, 0.4], [0.0, 0.1, 0.0, 0.9]])
    labels = np.array([1, 0, 0])
    assert scores.top_k_accuracy(probs, labels, 1) == 0
    assert scores.top_k_accuracy(probs, labels, 2) == pytest.approx(1 / 3)
    assert scores.top_k_accuracy(probs, labels, 4) == 1
    # p = 0 is clipped: a large but finite loss
    expected = -(np.log(0.3) + np.log(0.1) + np.log(scores.EPSILON)) / 3
    assert scores.cross_entropy(probs, labels) == pytest.approx(expected)


def test_bootstrap_interval():
    y = np.zeros(200, int)
    assert scores.bootstrap_accuracy_ci(y, y, 100, seed=0) == (1.0, 1.0)
    half = np.arange(200) % 2
    lo, hi = scores.bootstrap_accuracy_ci(y, half, 500, seed=3)
    assert lo < 0.5 < hi and hi - lo < 0.2
    assert scores.bootstrap_accuracy_ci(y, half, 500, seed=3) == (lo, hi)      # seeded
    lo_big, hi_big = scores.bootstrap_accuracy_ci(np.zeros(5000, int), np.arange(5000) % 2, 500, seed=3)
    assert hi_big - lo_big < (hi - lo) / 3                                          # narrows with n


def test_load_model_names_a_missing_or_broken_file(tmp_path):
    with pytest.raises(DataError, match="nothere.keras is missing"):
        inference.load_model(tmp_path / "nothere.keras")
    (tmp_path / "broken.keras").write_text("not a zip")
    with pytest.raises(DataError, match="broken.keras is not a readable Keras model"):
        inference.load_model(tmp_path / "broken.keras")


# -- Grad-CAM --------------------------------------------------------------------

def _red_detector(kind: str) -> keras.Model:
    """A model whose Grad-CAM is known: one 1x1 conv passes the red channel, pooled, and
    the dense layer scores it +1 for class 0 and -1 for class 1. So the heatmap of class 0
    is the red channel (scaled to a peak of 1), that of class 1 is empty."""
    conv = keras.layers.Conv2D(1, 1, activation="relu", name="red",
                               kernel_initializer=keras.initializers.Constant([[[[1.0], [0.0], [0.0]]]]))
    dense = keras.layers.Dense(2, activation="softmax", kernel_initializer=keras.initializers.Constant([[1.0, -1.0]]))
    if kind == "sequential":
        return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255), conv,
                                 keras.layers.GlobalAveragePooling2D(), dense])
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    if kind == "nested":
        inner = keras.Input((8, 8, 3))
        x = keras.Model(inner, conv(keras.layers.Conv2D(3, 1, name="early")(inner)), name="backbone")(x)
    else:
        x = conv(x)
    return keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(x)))


@pytest.mark.parametrize("kind", ["sequential", "functional", "nested"])
def test_gradcam_finds_the_last_conv_and_its_evidence(kind, tmp_path):
    model = _red_detector(kind)
    if kind == "nested":   # the early conv must not mix the red channel with the others
        model.get_layer("backbone").get_layer("early").set_weights([np.eye(3)[None, None], np.zeros(3)])
    model.save(tmp_path / "m.keras")
    model = inference.load_model(tmp_path / "m.keras")   # loaded models are what the stage sees
    path = [layer.name for layer in gradcam.last_conv_path(model)]
    assert path == (["backbone", "red"] if kind == "nested" else ["red"])

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
    before = inference.predict_probabilities(model, images)
    maps = gradcam.gradcam_heatmaps(model, images, [0, 0, 1])
    assert maps.shape == (3, 8, 8)
    red = images[..., 0].astype(float)
    assert np.allclose(maps[:2], red[:2] / red[:2].max(axis=(1, 2), keepdims=True), atol=1e-4)
    assert np.all(maps[2] == 0)
    # the softmax switched off for the gradients is back on
    assert np.allclose(inference.predict_probabilities(model, images), before)

    pictures = gradcam.overlay(images[0], maps[0])
    assert pictures.shape == images[0].shape and pictures.dtype == np.uint8


def test_gradcam_figure_on_a_nested_model(setup, tmp_path):
    root, prepared, _ = setup
    model = fitted(nested_model, prepared, root / "nested.keras")
    test = load_split(prepared, "test")
    probs = inference.predict_probabilities(model, test.images)
    figures.plot_gradcam(model, test.images, test.labels, probs, CLASSES, tmp_path / "g.png", 4, 0, "Nested")
    assert (tmp_path / "g.png").stat().st_size > 1000


def test_confusion_figure_for_many_classes(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 33, 500)
    predicted = np.where(rng.random(500) < 0.7, y, rng.integers(0, 33, 500))
    figures.plot_confusion(y, predicted, [f"Brand {i}" for i in range(33)], tmp_path / "c.png", "Many")
    from PIL import Image
    width, height = Image.open(tmp_path / "c.png").size
    assert width > 1200 and height > 1200   # grows with the class count, so the labels stay legible


# -- the stage -------------------------------------------------------------------

@pytest.fixture
def workdir(setup, tmp_path, monkeypatch):
    """A project folder with params, prepared data, both models and the transfer record."""
    root, prepared, _ = setup
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["evaluate"] = {"bootstrap": 50, "grid_images": 4, "gradcam_images": 2}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "data").mkdir()
    (tmp_path / "data/prepared").symlink_to(prepared)
    (tmp_path / "models").mkdir()
    (tmp_path / "models/cnn.keras").symlink_to(root / "plain.keras")
    nested = root / "nested.keras"
    if not nested.exists():
        fitted(nested_model, prepared, nested)
    (tmp_path / "models/transfer.keras").symlink_to(nested)
    (tmp_path / "details/train").mkdir(parents=True)
    (tmp_path / "details/train/transfer.json").write_text(json.dumps({"backbone": "vgg16", "pretrained": False}))
    monkeypatch.chdir(tmp_path)
    return tmp_path


OUTPUTS = ["per_class.csv", "confusion.csv", "confusion.png", "correct.png", "wrong.png", "gradcam.png"]
METRIC_KEYS = {"test_loss", "accuracy", "accuracy_ci95_low", "accuracy_ci95_high", "top3_accuracy", "macro_f1"}
DETAIL_KEYS = METRIC_KEYS | {"macro_precision", "macro_recall", "n_test", "model"}


@pytest.mark.parametrize("name", ["cnn", "transfer"])
def test_stage_writes_every_declared_output(workdir, name):
    from stages import evaluate

    stale = workdir / "plots/evaluate" / name / "old.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    evaluate.main([name])

    metrics = json.loads((workdir / f"metrics/evaluate/{name}.json").read_text())
    details = json.loads((workdir / f"details/evaluate/{name}.json").read_text())
    assert set(metrics) == METRIC_KEYS and set(details) == DETAIL_KEYS
    assert details["model"] == name and details["n_test"] == 24
    assert {k: details[k] for k in METRIC_KEYS} == metrics
    out = workdir / "plots/evaluate" / name
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)   # the earlier run's figure is gone
    for png in OUTPUTS[2:]:
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    confusion = pd.read_csv(out / "confusion.csv")
    assert list(confusion.columns) == ["actual", "predicted"] and len(confusion) == 24
    classes = load_classes(workdir / "data/prepared")
    assert set(confusion["actual"]) == set(classes) and set(confusion["predicted"]) <= set(classes)
    assert metrics["accuracy"] == pytest.approx((confusion["actual"] == confusion["predicted"]).mean())
    per_class = pd.read_csv(out / "per_class.csv")
    assert list(per_class.columns) == ["class", "precision", "recall", "f1", "support"]
    assert list(per_class["class"]) == classes


def test_titles_say_when_the_transfer_backbone_was_not_pretrained(workdir):
    from stages import evaluate

    assert evaluate.title_for("cnn") == "CNN"
    assert evaluate.title_for("transfer") == "Transfer model (VGG16, not pretrained)"
    (workdir / "details/train/transfer.json").write_text(json.dumps({"backbone": "vgg16", "pretrained": True}))
    assert evaluate.title_for("transfer") == "Transfer model (VGG16)"


def test_stage_refuses_an_unknown_model_in_one_line(workdir, capsys):
    from carbrands import stage
    from stages import evaluate

    with pytest.raises(UserError, match=r"cnn\|transfer"):
        evaluate.main(["resnet"])
    with pytest.raises(SystemExit) as exit_info:
        stage.run(lambda: evaluate.main(["resnet"]))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "resnet" in err and "Traceback" not in err


def test_stage_refuses_a_model_that_does_not_fit_the_data(workdir):
    from stages import evaluate

    small = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(2, 3),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    (workdir / "models/cnn.keras").unlink()
    small.save(workdir / "models/cnn.keras")
    with pytest.raises(DataError, match=r"models/cnn.keras: images are \(32, 32, 3\), the model takes \(16, 16, 3\)"):
        evaluate.main(["cnn"])
