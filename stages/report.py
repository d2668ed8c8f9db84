"""Stage `report`: REPORT.md from the run's own metrics and figures, plus the
comparison figures that span stages (plots/report/)."""
from pathlib import Path

from carbrands import params, report, stage
from carbrands.io import write_text


def main() -> None:
    p = params.load()
    text = report.build(Path("."), list(p["optimizers"]["runs"]))
    write_text("REPORT.md", text)
    print(f"report: wrote REPORT.md ({len(text.splitlines())} lines)")


if __name__ == "__main__":
    stage.run(main)
