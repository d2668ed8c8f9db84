"""What op determinism costs: images/s of the default CNN's training step with op
determinism on and off, at 64 and 224 px, side by side in one run.

Each configuration trains a fresh CNN (params.yaml's `train` section, batches of
`train.batch_size`) on one cached batch, repeated, so only the model's step is timed
(no input work). Three configurations:

- determinism on: as the stages run with `train.deterministic: true` (Keras never
  compiles XLA under op determinism, even when asked);
- determinism off: as the stages run with `train.deterministic: false` (Keras'
  jit_compile="auto": XLA where there is a GPU, none on a CPU-only machine);
- determinism off, XLA forced: jit_compile=True, to see what XLA itself gives.

The configurations take turns, round after round, so a load that comes and goes
hits them alike; the figure per configuration is the median over all timed steps.

    .venv/bin/python bench/determinism.py [--tiny] [--steps N] [--rounds N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _common as common  # noqa: E402
from bench._train_probe import WARMUP, _BatchTimes  # noqa: E402

FULL = dict(sizes=(64, 224), steps={64: 40, 224: 12}, rounds=3, classes=10)
TINY = dict(sizes=(32,), steps={32: 2}, rounds=1, classes=3)
# (label, op determinism, Keras' jit_compile): "auto" is what the stages use
# (Keras refuses XLA under op determinism even when asked: no "on, XLA" configuration)
CONFIGS = (("on", True, "auto"), ("off", False, "auto"), ("off, XLA forced", False, True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny sizes: checks that the benchmark runs")
    ap.add_argument("--steps", type=int, help="timed steps per configuration and round (all sizes)")
    ap.add_argument("--rounds", type=int, help="rounds of the configurations taking turns")
    args = ap.parse_args()
    cfg = dict(TINY if args.tiny else FULL)
    if args.steps:
        cfg["steps"] = {s: args.steps for s in cfg["sizes"]}
    cfg["rounds"] = args.rounds or cfg["rounds"]

    from carbrands import params, startup

    startup.import_tensorflow()   # here, not at start-up: --help and the argument checks need none
    from carbrands.training import devices

    train_cfg = params.load(common.ROOT / "params.yaml")["train"]
    load_before = os.getloadavg()
    rows = []
    for size in cfg["sizes"]:
        print(f"{size} px: {len(CONFIGS)} configurations x {cfg['rounds']} round(s) x {cfg['steps'][size]} "
              "steps ...", flush=True)
        step_seconds: dict[str, list[float]] = {name: [] for name, *_ in CONFIGS}
        xla = {}
        for _ in range(cfg["rounds"]):
            for name, deterministic, jit in CONFIGS:
                # forced XLA is several times slower on a CPU: fewer of its steps are timed
                steps = max(2, cfg["steps"][size] // 4) if jit is True else cfg["steps"][size]
                times, xla[name] = time_steps(train_cfg, size, cfg["classes"], deterministic, jit, steps)
                step_seconds[name] += times
        on = statistics.median(step_seconds["on"])
        for name, *_ in CONFIGS:
            median = statistics.median(step_seconds[name])
            rows.append({"size": size, "op determinism": name, "XLA": "on" if xla[name] else "off",
                         "images_per_second": round(train_cfg["batch_size"] / median, 1),
                         "min_ips": round(train_cfg["batch_size"] / max(step_seconds[name]), 1),
                         "max_ips": round(train_cfg["batch_size"] / min(step_seconds[name]), 1),
                         "speed_vs_on": round(on / median, 2), "timed_steps": len(step_seconds[name])})
    load_after = os.getloadavg()

    result = {"config": {**cfg, "steps": {str(k): v for k, v in cfg["steps"].items()},
                         "batch_size": train_cfg["batch_size"]},
              "rows": rows, "loadavg_1min": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
              "machine": {k: v for k, v in devices.machine_record().items() if k != "op_determinism"}}
    common.print_table(f"CNN training step, one cached batch of {train_cfg['batch_size']}, medians over timed steps "
                       f"(min-max); {os.cpu_count()} cores, load average {load_before[0]:.1f} before, "
                       f"{load_after[0]:.1f} after", rows,
                       ["size", "op determinism", "XLA", "images_per_second", "min_ips", "max_ips", "speed_vs_on"])
    for size in cfg["sizes"]:
        by = {r["op determinism"]: r for r in rows if r["size"] == size}
        print(f"{size} px: determinism off is {by['off']['speed_vs_on']:.2f}x the speed of on; "
              f"off with XLA forced on {by['off, XLA forced']['speed_vs_on']:.2f}x"
              + (" (tiny sizes: not a measurement)" if args.tiny else ""))
    common.save_json("determinism", result, args.tiny)


def time_steps(train_cfg: dict, size: int, classes: int, deterministic: bool, jit_compile,
               steps: int) -> tuple[list[float], bool]:
    """Seconds of each timed training step of a fresh CNN on one cached batch, and whether
    Keras compiled the step with XLA."""
    import keras
    import numpy as np
    import tensorflow as tf

    from carbrands import seeding
    from carbrands.models.cnn import build_cnn
    from carbrands.training.compiling import LOSS, METRICS, make_optimizer

    seeding.set_global_seed(0, deterministic)
    bs = train_cfg["batch_size"]
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (bs, size, size, 3)).astype(np.float32)
    y = rng.integers(0, classes, bs).astype(np.int32)
    batch = tf.data.Dataset.from_tensors((x, y)).cache().repeat()
    model = build_cnn(classes, size, train_cfg)
    model.compile(optimizer=make_optimizer(train_cfg["optimizer"], train_cfg["learning_rate"],
                                           train_cfg["momentum"]),
                  loss=LOSS, metrics=METRICS, jit_compile=jit_compile)
    times = _BatchTimes()
    model.fit(batch, epochs=1, steps_per_epoch=WARMUP + steps, callbacks=[times], verbose=0)
    ends = times.ends[WARMUP - 1:]
    keras.backend.clear_session()
    return [b - a for a, b in zip(ends, ends[1:])], bool(model.jit_compile)


if __name__ == "__main__":
    main()
