"""The transfer model's label in figure titles and the report, and its one source:
the `transfer` stage's details file."""
from __future__ import annotations

from pathlib import Path

from carbrands.errors import DataError
from carbrands.files import read_json


def transfer_title(backbone: str, pretrained: bool) -> str:
    """The transfer model's name in figure titles and the report: its backbone, and
    whether it started from random weights."""
    return f"Transfer model ({backbone.upper()}" + (")" if pretrained else ", not pretrained)")


def transfer_start(record: Path) -> tuple[str, bool]:
    """(backbone, pretrained) of the model the `transfer` stage trained, from its details
    (`record`, details/train/transfer.json): the one source of how it started."""
    if not record.is_file():
        raise DataError(f"{record} is missing: run the `transfer` stage first")
    info = read_json(record)
    if "pretrained" not in info or "backbone" not in info:
        raise DataError(f"{record} does not say which backbone and weights the model started from: "
                        "run the `transfer` stage again")
    return info["backbone"], bool(info["pretrained"])
