"""Images/s of the transfer backbones on this machine: forward (inference) and a
training step fine-tuning from a given layer (batch norm frozen, as the transfer
stage trains), with random weights on one cached batch, so no input work is timed.
The backbones take turns over rounds; medians over all timed steps.

    .venv/bin/python bench/backbone_speed.py [--backbones B ...] [--unfreeze-from L ...] [--sizes 224 260]
                                             [--batch 32] [--steps 4] [--rounds 3] [--deterministic] [--tiny]

--unfreeze-from replaces each backbone's default cases (auto, all) with these cuts
(transfer.fine_tune.unfreeze_from values: auto, all, a layer's name).

--deterministic turns op determinism on, as the stages do by default
(train.deterministic); run it with and without, back to back, for its price.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from carbrands import startup  # noqa: E402, F401  (before keras: TensorFlow's environment, oneDNN on)

# isort: split

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench import _common as common  # noqa: E402
from carbrands import seeding  # noqa: E402
from carbrands.models import transfer  # noqa: E402

# (backbone, fine-tuned from): `auto` is the backbone's default cut, `all` the whole network
DEFAULT_CASES = [("vgg16", "auto"), ("efficientnet_lite0", "auto"), ("efficientnet_lite0", "all"),
                 ("efficientnet_lite2", "auto"), ("efficientnet_lite2", "all")]


def timed_steps(step, steps: int) -> list[float]:
    step()   # the first call traces and compiles
    out = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        out.append(time.perf_counter() - start)
    return out


def make_case(backbone: str, unfreeze_from: str, size: int, batch: int):
    model = transfer.build_model(backbone, size, 30, 256, 0.5)
    parts = transfer.split(model, backbone, unfreeze_from)
    transfer.set_phase(parts, "fine_tune")
    model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
    y = np.zeros(batch, np.int64)
    forward = lambda: model.predict_on_batch(x)  # noqa: E731
    train = lambda: model.train_on_batch(x, y)  # noqa: E731
    return forward, train, transfer.trainable_params(parts, "fine_tune")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", nargs="+", help="only these backbones (all their cases)")
    ap.add_argument("--unfreeze-from", nargs="+", help="fine-tune from these instead of auto and all")
    ap.add_argument("--sizes", nargs="+", type=int, default=[224])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--deterministic", action="store_true", help="op determinism on, as in the stages")
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args()
    if args.tiny:
        args.sizes, args.batch, args.steps, args.rounds = [32], 4, 1, 1
    cases = [c for c in DEFAULT_CASES if not args.backbones or c[0] in args.backbones]
    if args.unfreeze_from:
        cases = [(b, u) for b in dict(cases) for u in args.unfreeze_from]
    if args.tiny:
        cases = [("efficientnet_lite0", "all")]
    seeding.set_global_seed(0, args.deterministic)
    built = {(b, u, s): make_case(b, u, s, args.batch) for b, u in cases for s in args.sizes}
    times = {key: {"forward": [], "train": []} for key in built}
    for _ in range(args.rounds):
        for key, (forward, train, _params) in built.items():
            times[key]["forward"] += timed_steps(forward, args.steps)
            times[key]["train"] += timed_steps(train, args.steps)
    rows = [{"backbone": b, "fine_tuned_from": u, "size": s, "trainable_params": built[(b, u, s)][2],
             "forward_images_per_s": round(args.batch / statistics.median(t["forward"]), 1),
             "train_images_per_s": round(args.batch / statistics.median(t["train"]), 1)}
            for (b, u, s), t in times.items()]
    determinism = "on" if args.deterministic else "off"
    common.print_table(f"Backbone speed (batches of {args.batch}, medians of {args.rounds} x {args.steps} steps, "
                       f"op determinism {determinism})", rows)
    common.save_json("backbone_speed", {"batch": args.batch, "deterministic": args.deterministic, "rows": rows},
                     args.tiny)


if __name__ == "__main__":
    main()
