"""Stage `report`: REPORT.md from the run's own metrics and figures, plus the
comparison figures that span stages (plots/report/)."""
from pathlib import Path

from carbrands import params, paths, stage
from carbrands.evaluation import comparison, report, report_figures
from carbrands.files import write_text
from carbrands.models.titles import transfer_start, transfer_title


def main() -> None:
    p = params.load()
    root = Path(".")
    runs = comparison.optimizer_runs(root, list(p["optimizers"]["runs"]), p["optimizers"]["seeds"])
    backbone, pretrained = transfer_start(paths.train_details("transfer"))
    label = transfer_title(backbone, pretrained)
    report_figures.draw_comparisons(root, runs, label)
    text = report.build(root, runs, label, pretrained)
    write_text(paths.REPORT, text)
    print(f"report: wrote REPORT.md ({len(text.splitlines())} lines)")


if __name__ == "__main__":
    stage.run(main)
