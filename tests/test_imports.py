"""The library's packages import only downwards: the core modules, then data/, models/,
training/, evaluation/; predict and the command line sit on top. So a model can be
built without the training code, and the training code without the evaluation."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "carbrands"
# a package may import from itself and from any package before it
ORDER = ["core", "data", "models", "training", "evaluation", "top"]
TOP = {"predict", "__main__"}


def _level(module: str) -> str:
    parts = module.split(".")
    # each package's names.py imports nothing: params.py checks against them all
    if parts[0] != "carbrands" or len(parts) == 1 or parts[2:3] == ["names"]:
        return "core"
    if parts[1] in ORDER:
        return parts[1]
    return "top" if parts[1] in TOP else "core"


def _imports(path: Path, names: bool = True) -> set[str]:
    """The modules path imports, each `from m import n` also as m.n where names is true."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module} | ({f"{node.module}.{a.name}" for a in node.names} if names else set())
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def test_library_packages_import_only_downwards():
    upward = []
    for path in sorted(LIBRARY.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        mine = ORDER.index(_level(module))
        for imported in {m for m in _imports(path) if m.startswith("carbrands.")}:
            if imported.rsplit(".", 1)[0] == "carbrands" and imported.split(".")[1] in ORDER:
                level = imported.split(".")[1]   # `from carbrands import data` names a package
            else:
                level = _level(imported)
            if ORDER.index(level) > mine:
                upward.append(f"{module} imports {imported}")
    assert not upward, upward


def test_benchmarks_do_not_import_the_tests():
    # what both share lives in devtools/, so a benchmark runs from a checkout without tests/
    importing = [f"{path.relative_to(ROOT)} imports {module}" for path in sorted((ROOT / "bench").glob("*.py"))
                 for module in _imports(path, names=False) if module.split(".")[0] == "tests"]
    assert not importing, importing
