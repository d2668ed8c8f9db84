"""Assemble the offline `dvc plots show` template: plots_html/template.html with each
`<!-- vendor: NAME -->` marker replaced by the vendored script NAME, inline.

Usage: python -m plots_html.build_template OUT.html
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from carbrands.errors import UserError
from carbrands.files import atomic_path
from carbrands.stage import run

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "template.html"
VENDOR = HERE / "vendor"
MARKER = re.compile(r"<!-- vendor: ([\w.-]+) -->")
# dvc_render fills a template by plain text replacement of these, over the whole page.
PLOTS_PLACEHOLDER = "{plot_divs}"
DVC_PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")
SOURCE_MAP = re.compile(r"^//# sourceMappingURL=.*$", re.MULTILINE)


class TemplateError(UserError):
    """The template or a vendored script cannot make a working offline page."""


def inline_script(name: str, vendor_dir: Path = VENDOR) -> str:
    """The vendored script `name` as an inline <script> element."""
    path = vendor_dir / name
    if not path.is_file():
        raise TemplateError(f"vendored script missing: {path}")
    code = SOURCE_MAP.sub("", path.read_text(encoding="utf-8")).rstrip()
    # Any of these inside the code would end the element early or be rewritten by DVC.
    for bad in ("</script", "<!--", *DVC_PLACEHOLDERS):
        if bad in code.lower():
            raise TemplateError(f"{path}: contains {bad!r}, cannot be inlined")
    return f"<script>/* {name}, vendored: see plots_html/README.md */\n{code}\n</script>"


def assemble(template: str, vendor_dir: Path = VENDOR) -> str:
    """The template text with every vendor marker replaced by its script inline."""
    if PLOTS_PLACEHOLDER not in template:
        raise TemplateError(f"template lacks the {PLOTS_PLACEHOLDER} placeholder DVC fills")
    if "{scripts}" in template:
        # DVC would put its own script tags there, which load the libraries from the internet.
        raise TemplateError("template must not contain the {scripts} placeholder")
    if not MARKER.search(template):
        raise TemplateError("template has no <!-- vendor: NAME --> marker")
    return MARKER.sub(lambda m: inline_script(m.group(1), vendor_dir), template)


def build(out: str | Path, template: Path = TEMPLATE, vendor_dir: Path = VENDOR) -> Path:
    """Write the assembled template to `out` and return its path."""
    html = assemble(template.read_text(encoding="utf-8"), vendor_dir)
    with atomic_path(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return Path(out)


def main() -> None:
    if len(sys.argv) != 2:
        raise TemplateError("usage: python -m plots_html.build_template OUT.html")
    print(build(sys.argv[1]))


if __name__ == "__main__":
    run(main)
