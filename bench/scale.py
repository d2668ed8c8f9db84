"""The pipeline at the real dataset's scale: 33 brands, 349/75/75 images per brand
(16,467 JPEGs, 320 px wide), synthetic.

Each step runs as its own process in a temporary project (its own params.yaml):
synthesize, audit, prepare at 224 and at the default size 64; then, per size, a
training probe that times a limited number of CNN steps (build_cnn with the
default train params, fed by carbrands.data.pipeline.make_dataset with the augmenter, op
determinism on, as the train stage runs) and extrapolates to one epoch.
"The training loop never waits on input" is checked by feeding the same model
once from the input pipeline and once from one cached batch (no input work):
equal throughput means no waiting.

    .venv/bin/python bench/scale.py [--tiny] [--steps N]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _common as common  # noqa: E402
from carbrands import files  # noqa: E402

FULL = dict(brands=33, per_brand={"train": 349, "val": 75, "test": 75}, sizes=(64, 224), planted=4,
            steps={64: 30, 224: 10})
TINY = dict(brands=3, per_brand={"train": 8, "val": 2, "test": 2}, sizes=(32,), planted=1, steps={32: 2})
PREPARE_TARGET = 300          # images per second
MEMORY_TARGET_MB = 4 * 1024   # peak of any data step's whole process tree
PROBE = Path(__file__).with_name("_train_probe.py")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="3 brands x 8/2/2 images at 32 px: checks that it runs")
    ap.add_argument("--steps", type=int, help="training steps timed per size (default: 30 at 64 px, 10 at 224)")
    args = ap.parse_args()

    cfg = TINY if args.tiny else FULL
    n_images = cfg["brands"] * sum(cfg["per_brand"].values())
    sizes = sorted(cfg["sizes"], reverse=True)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        project = Path(tmp)
        print(f"{cfg['brands']} brands x {cfg['per_brand']} = {n_images} images in {project}", flush=True)
        steps = common.build_prepared(project, cfg["brands"], cfg["per_brand"], sizes[0], planted=cfg["planted"])
        (project / "data/prepared").rename(project / f"prepared-{sizes[0]}")
        for size in sizes[1:]:
            steps.append(common.prepare_again(project, size, n_images))
            (project / "data/prepared").rename(project / f"prepared-{size}")
        training = []
        for size in sorted(sizes):
            n_steps = args.steps or cfg["steps"][size]
            print(f"\ntraining probe at {size} px ({n_steps} timed steps per measurement) ...", flush=True)
            out = project / f"probe-{size}.json"
            step = common.run_measured(
                f"train probe@{size}", [sys.executable, str(PROBE), str(project / f"prepared-{size}"),
                                        str(n_steps), str(out)], project)
            steps.append(step)
            training.append({**files.read_json(out), "probe_seconds": step.seconds,
                             "probe_tree_pss_mb": step.tree_pss_mb, "probe_tree_anon_mb": step.tree_anon_mb})

    _print_steps(steps)
    _print_training(training)
    result = {"config": {**cfg, "steps": {str(k): v for k, v in cfg["steps"].items()}, "images": n_images},
              "steps": [s.row() for s in steps], "training": training,
              "targets": _targets(steps, sizes[0])}
    for line in result["targets"]["lines"]:
        print(line + (" (tiny sizes: not a measurement)" if args.tiny else ""))
    common.save_json("scale", result, args.tiny)


def _print_steps(steps: list) -> None:
    common.print_table("Steps, each a separate process (memory: largest process; whole tree; whole tree "
                       "without file-backed pages)",
                       [s.row() for s in steps],
                       ["name", "images", "seconds", "images_per_second", "max_rss_mb", "tree_pss_mb",
                        "tree_anon_mb"])


TRAINING_ROWS = [  # (label, key in the probe's figures)
    ("device", "device"),
    ("model parameters", "params"), ("train images", "train_images"),
    ("steps per epoch (batch 32)", "steps_per_epoch"),
    ("seconds per training step", "step_seconds"), ("seconds per validation batch", "val_batch_seconds"),
    ("seconds per epoch (extrapolated)", "epoch_seconds_estimate"),
    ("model images/s, fed by the input pipeline", "model_pipeline_ips"),
    ("model images/s, fed one cached batch", "model_cached_ips"),
    ("input stall % (0: never waits on input)", "input_stall_percent"),
    ("input pipeline alone, images/s", "input_only_ips"), ("no-op model, images/s", "noop_model_ips"),
    ("seconds to the first batch", "first_batch_seconds"), ("probe process peak MB", "probe_tree_pss_mb"),
    ("probe process peak MB, anonymous", "probe_tree_anon_mb"),
]


def _print_training(training: list[dict]) -> None:
    rows = [{"": label, **{f"{t['size']} px": t[key] for t in training}} for label, key in TRAINING_ROWS]
    common.print_table("CNN training probe (default train params, augmenter on, op determinism on, as in the "
                       "train stage)", rows)
    timed = ", ".join(f"{t['timed_steps']} steps at {t['size']} px" for t in training)
    print(f"Timed over {timed}, after 2 warm-up steps. An epoch is extrapolated: seconds to the first batch "
          "(the first batches read and augmented) + seconds per training step x steps per epoch "
          "+ seconds per validation batch x validation batches.\n"
          "input stall = 1 - (model speed fed by the input pipeline / fed one cached batch).")


def _targets(steps: list, big: int) -> dict:
    data_steps = [s for s in steps if not s.name.startswith("train")]
    prepare = next(s for s in steps if s.name == f"prepare@{big}")
    peak = max(s.tree_pss_mb for s in data_steps)  # file-backed pages included: the cautious figure
    lines = [f"target prepare@{big} >= {PREPARE_TARGET} images/s: {prepare.images_per_second:.0f} "
             f"({'met' if prepare.images_per_second >= PREPARE_TARGET else 'NOT met'})",
             f"target peak memory of the data steps < {MEMORY_TARGET_MB} MB: {peak:.0f} MB "
             f"({'met' if peak < MEMORY_TARGET_MB else 'NOT met'})"]
    return {"prepare_images_per_second": round(prepare.images_per_second, 1), "data_peak_mb": peak, "lines": lines}


if __name__ == "__main__":
    main()
