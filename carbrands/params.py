"""Loading and validating params.yaml.

Every key is checked when loaded (type, range, known names), so a bad value
stops a stage at once with one line naming the key, instead of deep in
TensorFlow minutes later.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from carbrands.data.names import RESIZE_MODES, SPLITS
from carbrands.errors import ParamError
from carbrands.models.names import BACKBONES, POOLINGS, TRAINED_MODELS
from carbrands.training.names import CLASS_WEIGHTS, OPTIMIZERS, SCHEDULES, STRATEGIES

# Beyond the 16 named brands the synthesizer numbers them; the benchmarks' large datasets need that.
MAX_SYNTH_BRANDS = 1000


# -- checkers: each returns the (possibly converted) value or raises ParamError

def _int(lo=None, hi=None) -> Callable:
    def check(key, v):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ParamError(key, f"expected an integer, got {v!r}")
        if lo is not None and v < lo or hi is not None and v > hi:
            raise ParamError(key, f"{v} is outside {lo}..{hi if hi is not None else 'inf'}")
        return v
    return check


def _float(lo=None, hi=None, lo_open=False) -> Callable:
    def check(key, v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ParamError(key, f"expected a number, got {v!r}")
        v = float(v)
        too_low = lo is not None and (v <= lo if lo_open else v < lo)
        if too_low or (hi is not None and v > hi):
            bracket = "(" if lo_open else "["
            raise ParamError(key, f"{v} is outside {bracket}{lo}, {hi if hi is not None else 'inf'}]")
        return v
    return check


def _bool(key, v):
    if not isinstance(v, bool):
        raise ParamError(key, f"expected true or false, got {v!r}")
    return v


def _str(key, v):
    if not isinstance(v, str) or not v:
        raise ParamError(key, f"expected a non-empty string, got {v!r}")
    return v


def _choice(*allowed) -> Callable:
    def check(key, v):
        if v not in allowed:
            raise ParamError(key, f"{v!r} is not one of {', '.join(allowed)}")
        return v
    return check


def _list_of(item: Callable, min_len=1) -> Callable:
    def check(key, v):
        if not isinstance(v, list) or len(v) < min_len:
            raise ParamError(key, f"expected a list of at least {min_len} item(s), got {v!r}")
        return [item(f"{key}[{i}]", x) for i, x in enumerate(v)]
    return check


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _section(spec: dict) -> Callable:
    def check(key, v):
        if not isinstance(v, dict):
            raise ParamError(key or "params.yaml", f"expected a mapping, got {v!r}")
        unknown = sorted(set(v) - set(spec))
        if unknown:
            raise ParamError(_join(key, unknown[0]), f"unknown key (known: {', '.join(spec)})")
        out = {}
        for name, checker in spec.items():
            if name not in v:
                raise ParamError(_join(key, name), "missing")
            out[name] = checker(_join(key, name), v[name])
        return out
    return check


def _optimizer_run(key, v):
    spec = {"optimizer": _choice(*OPTIMIZERS), "learning_rate": _float(0, 10, lo_open=True)}
    if isinstance(v, dict) and "momentum" in v:
        spec["momentum"] = _float(0, 1)
    return _section(spec)(key, v)


def _optimizer_runs(key, v):
    if not isinstance(v, dict) or not v:
        raise ParamError(key, f"expected a mapping of run name to optimizer settings, got {v!r}")
    for name in v:
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ParamError(key, f"run name {name!r} must be letters, digits, '-' or '_'")
    return {name: _optimizer_run(f"{key}.{name}", run) for name, run in v.items()}


def _seeds(key, v):
    seeds = _list_of(_int(0, 2**31 - 1))(key, v)
    if len(set(seeds)) != len(seeds):
        raise ParamError(key, f"seeds repeat: {seeds}")
    return seeds


def _weights(key, v):
    # imagenet / none, or a path to a weights file (checked by the stage that reads it)
    return _str(key, v)


def _auto_or(checker: Callable) -> Callable:
    """"auto" (a value a stage chooses from the data) or what `checker` accepts."""
    def check(key, v):
        return v if v == "auto" else checker(key, v)
    return check


_FRACTION = _float(0, 1)
_PHASE_SPEC = {
    "learning_rate": _float(0, 10, lo_open=True),
    "epochs": _int(0, 10000),
    "patience": _int(1, 10000),
    "augment": _bool,
    "schedule": _choice(*SCHEDULES),
}
_PHASE = _section(_PHASE_SPEC)

SCHEMA = _section({
    "seed": _int(0, 2**31 - 1),
    "synth": _section({
        "out_dir": _str,
        "brands": _int(2, MAX_SYNTH_BRANDS),
        "per_brand": _section({s: _int(1, 100000) for s in SPLITS}),
        "planted_exact": _int(0, 1000),
        "planted_near": _int(0, 1000),
        "jpeg_quality": _int(30, 100),
    }),
    "data": _section({
        "dir": _str,
        "image_size": _auto_or(_int(32, 1024)),   # auto: the audit's recommendation (prepare reads it)
        "resize": _choice(*RESIZE_MODES),
        "drop_leaked": _bool,
        "val_fraction": _float(0, 0.9),
        "test_fraction": _float(0, 0.9),
        "near_duplicate_distance": _int(0, 64),
        "near_duplicate_inlier_share": _float(0, 1, lo_open=True),
        "near_duplicate_similarity": _float(-1, 1),
        "max_image_pixels": _int(1, 10**10),
    }),
    "augment": _section({
        "rotation": _FRACTION,
        "shift": _FRACTION,
        "zoom": _float(0, 0.9),
        "shear": _FRACTION,
        "flip_horizontal": _bool,
        "flip_vertical": _bool,
        "brightness": _FRACTION,
        "contrast": _FRACTION,
    }),
    "train": _section({
        "image_size": _int(32, 1024),
        "filters": _list_of(_int(1, 4096)),
        "convs_per_block": _int(1, 8),
        "dropout": _list_of(_float(0, 0.95)),
        "pooling": _choice(*POOLINGS),
        "dense_units": _int(0, 65536),
        "head_dropout": _float(0, 0.95),
        "optimizer": _choice(*OPTIMIZERS),
        "learning_rate": _float(0, 10, lo_open=True),
        "momentum": _float(0, 1),
        "batch_size": _int(1, 65536),
        "class_weight": _choice(*CLASS_WEIGHTS),
        "epochs": _int(1, 10000),
        "patience": _int(1, 10000),
        "reduce_lr_patience": _int(1, 10000),
        "reduce_lr_factor": _float(0, 1, lo_open=True),
        "mixed_precision": _bool,
        "strategy": _choice(*STRATEGIES),
        "deterministic": _bool,        # op determinism in train, transfer and optimizers
    }),
    "transfer": _section({
        "backbone": _choice(*BACKBONES),
        "weights": _weights,
        "dense_units": _int(1, 65536),
        "dropout": _float(0, 0.95),
        "batch_size": _int(1, 65536),
        "backbone_batch_size": _int(1, 65536),
        "class_weight": _choice(*CLASS_WEIGHTS),
        "mirror_features": _bool,
        "head": _PHASE,
        "fine_tune": _section({**_PHASE_SPEC, "unfreeze_from": _str,   # auto | all | a layer name
                               "interpolate": _auto_or(_FRACTION)}),   # auto: chosen on validation
    }),
    "evaluate": _section({
        "bootstrap": _int(10, 100000),
        "grid_images": _int(1, 100),
        "gradcam_images": _int(0, 100),
    }),
    "optimizers": _section({
        "epochs": _int(1, 10000),
        "seeds": _seeds,
        "runs": _optimizer_runs,
    }),
    "export": _section({
        "model": _choice(*TRAINED_MODELS),
    }),
})


def validate(raw: Any) -> dict:
    """Check a params mapping against SCHEMA and cross-key rules; return it normalised."""
    p = SCHEMA("", raw)
    if len(p["train"]["dropout"]) != len(p["train"]["filters"]):
        raise ParamError("train.dropout", f"needs one value per block, i.e. {len(p['train']['filters'])} "
                         f"(the length of train.filters), got {len(p['train']['dropout'])}")
    step, batch = p["transfer"]["backbone_batch_size"], p["transfer"]["batch_size"]
    if step < batch and batch % step:
        raise ParamError("transfer.backbone_batch_size", f"{step} does not divide transfer.batch_size ({batch}): "
                         "an update averages the gradients of whole steps")
    if p["data"]["val_fraction"] + p["data"]["test_fraction"] >= 1:
        raise ParamError("data.val_fraction", "val_fraction + test_fraction must stay below 1")
    return p


def load(path: str | Path = "params.yaml") -> dict:
    """Read and validate params.yaml. Keys are addressed as p['train']['epochs']."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamError(str(path), "file not found") from None
    except yaml.YAMLError as e:
        raise ParamError(str(path), f"not valid YAML: {e}") from None
    return validate(raw)


# the pipeline beside this code (a checkout: the stages run from one)
DVC_YAML = Path(__file__).resolve().parents[1] / "dvc.yaml"


def declared(stage: str, p: dict, item: dict | None = None, dvc_yaml: str | Path = DVC_YAML) -> dict:
    """The params `stage` lists in dvc.yaml (`${item.<name>}` filled in from item, for a
    matrix stage), with their values in p: what the stage reads, from its one home.
    A training stage keys its resume backup on them."""
    listed = yaml.safe_load(Path(dvc_yaml).read_text())["stages"][stage]["params"]
    values = {}
    for key in listed:
        for name, value in (item or {}).items():
            key = key.replace(f"${{item.{name}}}", str(value))
        value = p
        for part in key.split("."):
            value = value[part]
        values[key] = value
    return values
