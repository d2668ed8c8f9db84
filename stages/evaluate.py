"""Stage `evaluate@<model>`: score models/<model>.keras on the prepared test split.

    python -m stages.evaluate cnn|transfer

Outputs: metrics/evaluate/<model>.json (headline numbers), details/evaluate/<model>.json
(with macro precision, recall and the test count), and under plots/evaluate/<model>/:
per_class.csv, confusion.csv (actual, predicted: DVC's confusion template),
confusion.png, correct.png, wrong.png, gradcam.png.
"""
from __future__ import annotations

import sys

from carbrands import files, params, paths, seeding, stage
from carbrands.data import prepared
from carbrands.errors import UserError
from carbrands.evaluation import figures, scores
from carbrands.models import inference, titles
from carbrands.models.names import TRAINED_MODELS


def title_for(model: str) -> str:
    """The model's name for figure titles; says so when the transfer backbone started
    from random weights."""
    return "CNN" if model == "cnn" else titles.transfer_title(*titles.transfer_start(paths.train_details("transfer")))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in TRAINED_MODELS:
        raise UserError(f"usage: python -m stages.evaluate {'|'.join(TRAINED_MODELS)} "
                        f"(got {' '.join(args) or 'nothing'})")
    name = args[0]
    p = params.load()
    cfg = p["evaluate"]
    seeding.set_global_seed(p["seed"])

    model_path = paths.model(name)
    model = inference.load_model(model_path)
    classes = prepared.load_classes(paths.PREPARED)
    test = prepared.load_split(paths.PREPARED, "test")
    scores.check_compatible(model, test.images, len(classes), str(model_path))
    title = title_for(name)

    metrics, per_class, confusion, probabilities = scores.evaluate_split(
        model, test.images, test.labels, classes, cfg["bootstrap"], p["seed"])
    predicted = probabilities.argmax(axis=1)

    # the folder is replaced as a whole: no figure of an earlier run is left behind
    with files.atomic_path(paths.evaluate_plots(name)) as out:
        # 4 decimals: the 17-digit floats are unreadable, and 75 images a class need no more
        files.write_csv(out / "per_class.csv", per_class.round(4))
        files.write_csv(out / "confusion.csv", confusion)
        figures.plot_confusion(test.labels, predicted, classes, out / "confusion.png",
                               f"{title}: confusion matrix on the test set")
        n_right, n_wrong = figures.prediction_grids(
            test.images, test.labels, probabilities, classes, out / "correct.png", out / "wrong.png",
            cfg["grid_images"], p["seed"], title)
        figures.plot_gradcam(model, test.images, test.labels, probabilities, classes, out / "gradcam.png",
                             cfg["gradcam_images"], p["seed"], title)
    files.write_json(paths.evaluate_metrics(name), {k: metrics[k] for k in scores.HEADLINE})
    files.write_json(paths.evaluate_details(name), {**metrics, "model": name})
    print(f"evaluate {name}: test accuracy {metrics['accuracy']:.3f} "
          f"(95% CI {metrics['accuracy_ci95_low']:.3f}-{metrics['accuracy_ci95_high']:.3f}), "
          f"top-3 {metrics['top3_accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f}, "
          f"loss {metrics['test_loss']:.3f}; {n_right} right, {n_wrong} wrong of {metrics['n_test']}")


if __name__ == "__main__":
    stage.run(main)
