"""float32 against mixed_bfloat16 on this CPU: training steps of the custom CNN (the
default train params, fed 224 px images as on real photos) and of EfficientNet-Lite0
fine-tuned whole (batch norm frozen, as the transfer stage trains it), each on one
cached batch, so no input work is timed. The two precisions take turns over rounds;
medians over all timed steps, and their ratio.

oneDNN runs bfloat16 convolutions natively where the CPU has AVX-512 BF16 or AMX
(the cpu_flags line says which this one has); elsewhere it emulates them.

    .venv/bin/python bench/cpu_precision.py [--steps 4] [--rounds 3] [--tiny]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _common as common  # noqa: E402
from carbrands import params, startup  # noqa: E402  (carbrands.seeding imports TensorFlow: in main)

POLICIES = ("float32", "mixed_bfloat16")


def make_step(model_name: str, policy: str, size: int, batch: int):
    """A compiled model of `model_name` built under `policy`, and a function that runs
    one training step of it on a fixed random batch."""
    import keras
    import numpy as np

    from carbrands.models import transfer
    from carbrands.models.cnn import build_cnn
    from carbrands.training.compiling import compile_model, make_optimizer

    keras.mixed_precision.set_global_policy(policy)
    try:
        if model_name == "cnn":
            model = build_cnn(30, size, params.load("params.yaml")["train"])
        else:
            model = transfer.build_model(model_name, size, 30, 256, 0.5)
            parts = transfer.split(model, model_name, "all")
            transfer.set_phase(parts, "fine_tune")
        compile_model(model, make_optimizer("adam", 1e-4))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    x = np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
    y = np.arange(batch) % 30
    return lambda: model.train_on_batch(x, y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="32 px, batches of 4, one step: checks that it runs")
    args = ap.parse_args()
    size, batch = (32, 4) if args.tiny else (224, 32)
    if args.tiny:
        args.steps, args.rounds = 1, 1
    startup.import_tensorflow()
    from carbrands import seeding
    from carbrands.training import devices

    seeding.set_global_seed(0, True)   # op determinism on, as the stages train
    cases = {(m, policy): make_step(m, policy, size, batch)
             for m in ("cnn", "efficientnet_lite0") for policy in POLICIES}
    times = {key: [] for key in cases}
    for step in cases.values():
        step()   # the first call traces and compiles
    for _ in range(args.rounds):
        for key, step in cases.items():
            for _ in range(args.steps):
                start = time.perf_counter()
                step()
                times[key].append(time.perf_counter() - start)
    rows = []
    for model_name in ("cnn", "efficientnet_lite0"):
        rate = {policy: batch / statistics.median(times[(model_name, policy)]) for policy in POLICIES}
        rows.append({"model": model_name, **{f"{p}_images_per_s": round(rate[p], 1) for p in POLICIES},
                     "bf16_speedup": round(rate["mixed_bfloat16"] / rate["float32"], 2)})
    cpu, flags = devices.cpu_info()
    print(f"cpu: {cpu}; cpu_flags: {' '.join(flags)}")
    common.print_table(f"Training steps at {size} px, batches of {batch}, medians of {args.rounds} x {args.steps}",
                       rows)
    common.save_json("cpu_precision", {"cpu": cpu, "cpu_flags": flags, "size": size, "batch": batch,
                                       "rows": rows}, args.tiny)


if __name__ == "__main__":
    main()
