"""Latency per image, batch 1, of a model in each form `export` writes: the Keras model,
the SavedModel's serving signature (what TensorFlow Serving runs) and the TFLite
interpreter. Median and 90th percentile over repeats, after warm-up calls.

    .venv/bin/python bench/export_latency.py [--model models/cnn.keras | --transfer [--size 224]]
                                             [--repeats 300] [--tiny]

Without --model: the default CNN of params.yaml at data.image_size, or with --transfer
the default transfer model (transfer.backbone with its head) at --size px, 10 brands,
untrained (latency does not depend on the weights). --tiny: 32 px, 20 repeats (the tests).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _common as common  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="a .keras model saved by the pipeline (default: see above)")
    ap.add_argument("--transfer", action="store_true", help="the default transfer model instead of the CNN")
    ap.add_argument("--size", type=int, default=224, help="input size of the --transfer model")
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args()
    repeats, warmup = (20, 3) if args.tiny else (args.repeats, 20)

    from carbrands import params, startup

    startup.import_tensorflow()
    from carbrands.models import bundle, export, transfer
    from carbrands.models.cnn import build_cnn

    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        tmp = Path(tmp)
        if args.model:
            keras_form = export.load(args.model)
            info, model, label = keras_form.info, keras_form.keras_model, str(args.model)
        else:
            p = params.load(common.ROOT / "params.yaml")
            if args.transfer:
                size, backbone = (32 if args.tiny else args.size), p["transfer"]["backbone"]
                model = transfer.build_model(backbone, size, 10, p["transfer"]["dense_units"], p["transfer"]["dropout"])
                label = f"default transfer model ({backbone}), {size} px"
            else:
                size = 32 if args.tiny else p["data"]["image_size"]
                model, label = build_cnn(10, size, p["train"]), f"default CNN, {size} px"
            info = bundle.make_info([f"brand {i}" for i in range(10)], size, "pad")
        export.write_saved_model(model, tmp / "saved_model", info)
        export.write_tflite(tmp / "saved_model", tmp / "model.tflite", info)
        size = info["image_size"]
        image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3)).astype(np.float32)

        forms = {"keras (model.predict_on_batch)": lambda x: model.predict_on_batch(x),
                 "SavedModel (serving_default)": export.load(tmp / "saved_model").predict,
                 "TFLite (Interpreter.invoke)": export.load(tmp / "model.tflite").predict}
        rows = [{"form": name, **_time(fn, image, warmup, repeats)} for name, fn in forms.items()]

    load = os.getloadavg()[0]
    common.print_table(f"Latency per image, batch 1 ({label}; {repeats} repeats; load average {load:.1f} "
                       f"on {os.cpu_count()} cores)", rows)
    common.save_json("export_latency", {"model": label, "repeats": repeats, "load_average": load,
                                        "cores": os.cpu_count(), "rows": rows}, args.tiny)


def _time(predict, image: np.ndarray, warmup: int, repeats: int) -> dict:
    for _ in range(warmup):
        predict(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(image)
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000
    return {"median_ms": round(float(np.median(ms)), 3), "p90_ms": round(float(np.percentile(ms, 90)), 3)}


if __name__ == "__main__":
    main()
