"""The offline `dvc plots show` page (plots_html/): assembled correctly, and drawn by a
real headless Chromium with every network lookup made to fail.

Where Chromium is not installed or cannot start, the browser tests cannot say anything:
with CI=true (CI installs Chromium in .ci/run) that is a failure; elsewhere they are
skipped with a message saying so, never passed.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from plots_html.build_template import TemplateError, assemble, build, inline_script

DVC = Path(sys.executable).parent / "dvc"
VENDORED = {"vega": "vega.min.js", "vega-lite": "vega-lite.min.js", "vega-embed": "vega-embed.min.js"}
SCRIPT_SRC = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?([^\"'\s>]+)", re.IGNORECASE)
# The browser resolves no host name and has a dead proxy: anything fetched from
# outside the page fails, so what it draws came from the page itself.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
    "--virtual-time-budget=5000", "--window-size=1200,900",
]


def _unavailable(why: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"chromium not available in CI (.ci/run installs it): {why}")
    pytest.skip(f"chromium not available: {why}")


def _chromium(binary: str, page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
                           page.as_uri()], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def chromium(tmp_path_factory) -> str:
    """Path of a Chromium that can start and run a page's script (probed once)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        _unavailable("no chromium on PATH (apt-get install chromium)")
    tmp = tmp_path_factory.mktemp("probe")
    page = tmp / "probe.html"
    page.write_text("<p id=p></p><script>document.getElementById('p').textContent='ran'</script>")
    try:
        done = _chromium(binary, page, tmp / "profile", "--dump-dom")
    except (OSError, subprocess.TimeoutExpired) as e:
        _unavailable(f"{binary} could not start: {e}")
    if "ran" not in done.stdout:
        _unavailable(f"{binary} did not run a page (exit {done.returncode}): {done.stderr[-500:]}")
    return binary


@pytest.fixture(scope="module")
def plots_project(tmp_path_factory) -> Path:
    """A DVC project (no git) holding one training curve, accuracy per epoch."""
    root = tmp_path_factory.mktemp("project")
    _dvc(root, "init", "--no-scm", "-q")
    (root / "acc.csv").write_text("epoch,accuracy\n1,0.31\n2,0.52\n3,0.64\n4,0.71\n5,0.78\n")
    return root


def _dvc(cwd: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run([str(DVC), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _show(project: Path, out: str, *template_args: str) -> Path:
    _dvc(project, "plots", "show", "acc.csv", "-x", "epoch", "-y", "accuracy",
         "-o", out, *template_args)
    return project / out / "index.html"


@pytest.fixture(scope="module")
def offline_page(plots_project) -> Path:
    template = build(plots_project / "offline-template.html")
    return _show(plots_project, "offline", "--html-template", str(template))


# --- the template ---------------------------------------------------------------------

def test_vendored_scripts_are_the_versions_dvc_asks_for():
    from dvc_render.vega import VegaRenderer
    wanted = dict(re.findall(r"/(vega(?:-lite|-embed)?)@([\d.]+)", VegaRenderer.SCRIPTS))
    assert set(wanted) == set(VENDORED), VegaRenderer.SCRIPTS
    for package, version in wanted.items():
        code = inline_script(VENDORED[package])
        assert f'"{version}"' in code, f"{VENDORED[package]} is not {package} {version}"


def test_assembled_template_inlines_scripts_and_loads_nothing(tmp_path):
    html = build(tmp_path / "t.html").read_text(encoding="utf-8")
    assert "{plot_divs}" in html and "{scripts}" not in html
    assert SCRIPT_SRC.findall(html) == []
    assert "<!-- vendor:" not in html
    assert "sourceMappingURL" not in html
    for name in VENDORED.values():
        assert f"/* {name}, vendored" in html


@pytest.mark.parametrize("template, problem", [
    ("<html><!-- vendor: vega.min.js --></html>", "plot_divs"),
    ("{scripts}{plot_divs}<!-- vendor: vega.min.js -->", "{scripts}"),
    ("{plot_divs}", "no <!-- vendor"),
    ("{plot_divs}<!-- vendor: nope.min.js -->", "missing"),
])
def test_assemble_rejects_unusable_templates(template, problem):
    with pytest.raises(TemplateError, match=re.escape(problem)):
        assemble(template)


def test_assemble_rejects_scripts_that_cannot_be_inlined(tmp_path):
    (tmp_path / "bad.js").write_text('var s = "</script>";\n')
    with pytest.raises(TemplateError, match="cannot be inlined"):
        assemble("{plot_divs}<!-- vendor: bad.js -->", tmp_path)


# --- the page in a browser ------------------------------------------------------------

def test_offline_page_has_no_remote_scripts(offline_page):
    html = offline_page.read_text(encoding="utf-8")
    assert "vegaEmbed(" in html, "dvc wrote no vega plot into the page"
    remote = [src for src in SCRIPT_SRC.findall(html) if re.match(r"(?i)(https?:)?//", src)]
    assert remote == []


def test_offline_page_draws_the_curve(chromium, offline_page, tmp_path):
    dom = _chromium(chromium, offline_page, tmp_path / "p1", "--dump-dom").stdout
    assert re.search(r'<svg[^>]*class="marks"', dom), "vega drew no chart"
    assert 'class="mark-line' in dom
    line = re.search(r'class="mark-line[^"]*".*?<path[^>]*\bd="([^"]+)"', dom, re.S)
    assert line and line.group(1).count(",") >= 5, "the line has fewer points than the data"
    for axis_title in (">epoch<", ">accuracy<"):
        assert axis_title in dom

    shot = tmp_path / "shot.png"
    _chromium(chromium, offline_page, tmp_path / "p2", f"--screenshot={shot}")
    from PIL import Image
    pixels = list(Image.open(shot).convert("RGB").getdata())
    ink = [p for p in pixels if min(p) < 235]
    # A blank page has no ink; axes, grid, labels and the curve give thousands of pixels.
    assert len(ink) > 3000, f"only {len(ink)} non-white pixels"
    assert len(set(ink)) > 20, "too few colours for axes, text and a curve"
    # The curve itself: strongly coloured (not grey) pixels.
    coloured = [p for p in ink if max(p) - min(p) > 60]
    assert len(coloured) > 200, f"only {len(coloured)} coloured pixels: no curve drawn"


def test_default_page_draws_nothing_without_network(chromium, plots_project, tmp_path):
    """Control: DVC's own page fetches its scripts, so under the same flags it stays
    blank. This shows the flags do cut the network, and the test above could fail."""
    page = _show(plots_project, "default")
    assert any(re.match(r"(?i)https?://", src) for src in SCRIPT_SRC.findall(page.read_text()))
    dom = _chromium(chromium, page, tmp_path / "p", "--dump-dom").stdout
    assert "<div" in dom, "chromium returned no page at all"
    assert "<svg" not in dom and "<canvas" not in dom
