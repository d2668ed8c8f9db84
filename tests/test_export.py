"""The `export` stage: a SavedModel and a TFLite file that predict what the Keras model
predicts on the test split, each carrying the class names; a form that does not is
refused loudly and nothing is written."""
import json
import shutil

import keras
import numpy as np
import pytest
import yaml

import stages.export
from carbrands import paths
from carbrands.data.prepared import load_split
from carbrands.errors import DataError
from carbrands.models import bundle, export
from devtools.projects import ROOT

CLASSES = ["Alpha", "Beta Motors", "Gamma-Works"]


@pytest.fixture
def project(tmp_path, tiny_prepared, monkeypatch):
    """tiny prepared data and a small CNN saved as `train` saves it, under export.model: cnn."""
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["export"] = {"model": "cnn"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    shutil.copytree(tiny_prepared, tmp_path / paths.PREPARED)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(len(CLASSES), activation="softmax")])
    bundle.save_keras(model, tmp_path / paths.model("cnn"), bundle.make_info(CLASSES, 32, "pad"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_both_forms_are_written_checked_and_carry_the_classes(project):
    stages.export.main()
    checks = json.loads((paths.EXPORTED / "parity.json").read_text())
    test = load_split(paths.PREPARED, "test")
    reference = export.probabilities(export.load(paths.model("cnn")), test.images)
    for form, path in (("saved_model", paths.EXPORTED_SAVED_MODEL), ("tflite", paths.EXPORTED_TFLITE)):
        assert checks[form]["images"] == len(test) and checks[form]["top1_disagreements"] == 0
        assert checks[form]["max_abs_difference"] <= 1e-4
        loaded = export.load(path)
        assert loaded.form == form and loaded.info == {"classes": CLASSES, "image_size": 32, "resize": "pad"}
        assert np.abs(export.probabilities(loaded, test.images) - reference).max() <= 1e-4


def test_a_form_that_disagrees_stops_the_stage_and_nothing_is_written(project, monkeypatch):
    real = export.probabilities

    def drifting(loaded, images):
        out = real(loaded, images)
        return out + 1e-3 if loaded.form == "tflite" else out
    monkeypatch.setattr(export, "probabilities", drifting)
    with pytest.raises(export.ParityError, match=r"tflite does not match the Keras model .* 1.00e-03"):
        stages.export.main()
    assert not paths.EXPORTED.exists()


def test_parity_counts_changed_top1_predictions():
    reference = np.array([[0.6, 0.4], [0.2, 0.8]])
    assert export.parity(reference, reference + 1e-5, "x")["top1_disagreements"] == 0
    with pytest.raises(export.ParityError, match="1 of 2 top-1 predictions differ"):
        export.parity(reference, np.array([[0.6, 0.4], [0.50001, 0.49999]]), "x")


def test_a_model_without_class_names_is_refused_in_one_line(project):
    keras.models.load_model(paths.model("cnn")).save(paths.model("cnn"))   # plain model.save: no carbrands.json
    with pytest.raises(DataError, match="carries no class names"):
        stages.export.main()


@pytest.mark.slow
def test_an_efficientnet_lite_transfer_model_exports_with_parity(project):
    from carbrands.models import transfer
    keras.utils.set_random_seed(0)
    model = transfer.build_model("efficientnet_lite0", 32, len(CLASSES), dense_units=8, dropout=0.5)
    model.get_layer("predictions").set_weights([np.random.default_rng(0).normal(0, 1, (8, 3)).astype(np.float32),
                                                 np.zeros(3, np.float32)])   # not uniform: parity means something
    bundle.save_keras(model, paths.model("transfer"), bundle.make_info(CLASSES, 32, "pad"))
    p = yaml.safe_load(open("params.yaml"))
    p["export"] = {"model": "transfer"}
    yaml.safe_dump(p, open("params.yaml", "w"))
    stages.export.main()
    checks = json.loads((paths.EXPORTED / "parity.json").read_text())
    for form in ("saved_model", "tflite"):
        assert checks[form]["top1_disagreements"] == 0 and checks[form]["max_abs_difference"] <= 1e-4


@pytest.mark.parametrize("seen", [16, 8])   # 8: downscaled by 4 in two layers
def test_a_cnn_that_resizes_its_input_exports_with_parity(project, seen):
    """train.image_size below the prepared size puts a downscale in the model: the exported
    forms must run it, and in inference mode (batch norms on their moving statistics)."""
    from carbrands.models.cnn import build_cnn
    p = yaml.safe_load(open("params.yaml"))
    keras.utils.set_random_seed(0)
    model = build_cnn(len(CLASSES), 32, {**p["train"], "image_size": seen})
    assert model.get_layer("downscale").output.shape[1:3] == (seen, seen)
    bundle.save_keras(model, paths.model("cnn"), bundle.make_info(CLASSES, 32, "pad"))
    stages.export.main()
    checks = json.loads((paths.EXPORTED / "parity.json").read_text())
    for form in ("saved_model", "tflite"):
        assert checks[form]["top1_disagreements"] == 0 and checks[form]["max_abs_difference"] <= 1e-4
