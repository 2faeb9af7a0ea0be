"""The shape of the code (docs/architecture.md): the layers written in pyproject.toml hold, an
upward import breaks them, there are no import cycles, no medseg import hides in a function
body, and the top level of ``medseg/`` stays small."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "medseg"
#: the modules every layer uses; everything else lives in the subpackage of its concern
TOP_LEVEL = {"__init__", "cli", "errors", "hookspecs", "plugins", "registry", "specs", "volume"}


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    return subprocess.run([exe, "--config", str(cwd / "pyproject.toml"), "--no-cache"],
                          cwd=cwd, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)},
                          capture_output=True, text=True, timeout=300)


def _copy_tree(tmp_path: Path) -> Path:
    dest = tmp_path / "tree"
    shutil.copytree(PACKAGE, dest / "medseg",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_layers_and_independence_contracts_are_kept(tmp_path):
    result = _lint_imports(_copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "planted", "contract"), [
    ("volume.py", "from medseg.engine import segmenter  # noqa: F401\n", "layers"),
    ("models/nnunet/plans.py",
     "from medseg.models.monai_bundle import layout  # noqa: F401\n", "never import"),
    ("evaluation/metrics.py", "from medseg.evaluation import report  # noqa: F401\n",
     "evaluation wing"),
])
def test_a_planted_upward_import_breaks_a_contract(tmp_path, module, planted, contract):
    tree = _copy_tree(tmp_path)
    target = tree / "medseg" / module
    target.write_text(target.read_text() + "\n" + planted)
    result = _lint_imports(tree)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken), result.stdout[-3000:]


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(
                        child)))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        item = stack.pop()
                        on_stack.discard(item)
                        component.append(item)
                        if item == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


def test_cycle_finder_finds_a_planted_cycle():
    graph = grimp.build_graph("medseg", cache_dir=None)
    graph.add_import(importer="medseg.volume", imported="medseg.engine.segmenter")
    assert any("medseg.volume" in c and "medseg.engine.segmenter" in c for c in _cycles(graph))


def test_no_import_cycles():
    graph = grimp.build_graph("medseg", cache_dir=None)
    # a package importing its own submodules (``__init__`` re-exports) is not a cycle
    for module in list(graph.modules):
        for child in graph.find_children(module):
            if graph.direct_import_exists(importer=module, imported=child):
                graph.remove_import(importer=module, imported=child)
    assert _cycles(graph) == []


#: in-function imports that defer a heavy optional dependency, with the comment saying so
DEFERRED_MARK = "heavy optional dependency"


def _function_imports(path: Path) -> list[tuple[int, str]]:
    source = path.read_text()
    lines = source.splitlines()
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if in_function and isinstance(child, ast.ImportFrom) and child.level == 0 \
                    and (child.module or "").split(".")[0] == "medseg":
                context = " ".join(lines[max(0, child.lineno - 3):child.end_lineno])
                if DEFERRED_MARK not in context:
                    found.append((child.lineno, child.module or ""))
            elif in_function and isinstance(child, ast.Import) and any(
                    a.name.split(".")[0] == "medseg" for a in child.names):
                found.append((child.lineno, child.names[0].name))
            visit(child, in_function or isinstance(child, (ast.FunctionDef,
                                                           ast.AsyncFunctionDef)))

    visit(ast.parse(source), False)
    return found


def test_no_medseg_import_inside_a_function():
    offenders = [f"{path.relative_to(ROOT)}:{line} {module}"
                 for folder in (PACKAGE, ROOT / "plugins", ROOT / "app")
                 for path in sorted(folder.rglob("*.py"))
                 if "examples" not in path.parts
                 for line, module in _function_imports(path)]
    assert offenders == []


def test_top_level_keeps_only_the_shared_modules():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules <= TOP_LEVEL, sorted(modules - TOP_LEVEL)
    assert len(modules) <= 8


def test_cli_imports_only_the_command_it_runs():
    code = ("import sys; from medseg import cli; cli.build_parser(['info', 'x']); "
            "print(sorted(m for m in sys.modules if m.startswith('medseg.commands.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert out.strip() == "['medseg.commands.info']"


def test_every_package_is_installed():
    """pyproject lists packages by hand (``medseg_plugins`` maps to ``plugins/``): a new
    subpackage missing there would be absent from a non-editable install."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"])
    found = {".".join(p.relative_to(ROOT).parent.parts) for p in PACKAGE.rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
