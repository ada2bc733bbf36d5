"""The structure docs/architecture.md promises, read from the code with ``ast``.

Every module under ``vidwatch/`` is parsed, imports inside functions included (they are
imports all the same, only later), and three figures are checked against the document:

- no import cycle between our modules, and each package imports only the packages above
  it in the document's table (the modules beside the packages, ``errors``, ``logs``,
  ``metrics``, import none of ours but each other);
- no module over ``MAX_MODULE_LINES`` lines;
- no function over ``MAX_FUNCTION_LINES`` lines in ``vidwatch/jobs/`` and
  ``vidwatch/daemon/``;

except the exceptions the document names, each with a ceiling and a reason. An exception
that is no longer one must leave the list, so that it stays true.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vidwatch"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
FUNCTION_LIMITED = ("jobs", "daemon")
"""The packages whose functions are held to MAX_FUNCTION_LINES."""
BESIDE = ("__init__", "errors", "logs", "metrics", "times")
"""Modules of ``vidwatch`` itself, outside any package: below nothing, above everything."""


@dataclass(frozen=True)
class Module:
    name: str  # vidwatch.jobs.run
    path: Path
    tree: ast.Module
    lines: int

    @property
    def package(self) -> str:
        """The top-level package (``jobs``), or the module's own name beside them."""
        return self.name.split(".")[1] if self.name != "vidwatch" else "__init__"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def parse_modules(root: Path = PACKAGE) -> dict[str, Module]:
    modules = {}
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        name = module_name(path, root)
        modules[name] = Module(name, path, ast.parse(text, str(path)), len(text.splitlines()))
    return modules


def imports_of(module: Module, known: set[str]) -> set[str]:
    """The modules of ours that ``module`` imports anywhere in its body (functions and
    ``TYPE_CHECKING`` blocks included). ``from a.b import c`` is ``a.b.c`` when that is a
    module, else ``a.b``; a name outside ours (``import json``) is left out."""
    is_package = module.path.name == "__init__.py"
    found = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = module.name.split(".")
                anchor = here if is_package else here[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module.name:
                found.add(name)
    return found


def import_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    known = set(modules)
    return {name: imports_of(module, known) for name, module in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


# --- what docs/architecture.md says -----------------------------------------------------------
@cache
def architecture() -> str:
    return ARCHITECTURE.read_text(encoding="utf-8")


def package_order(doc: str) -> list[str]:
    """The packages of the table, top first: the first cell of each row names one."""
    return re.findall(r"^\| `(\w+)` \| ", doc, flags=re.MULTILINE)


def exceptions(doc: str) -> dict[str, int]:
    """The named exceptions: ``| `vidwatch/...py` | 850 lines | why |`` for a module,
    ``| `vidwatch.daemon.service.Service.start` | 130 lines | why |`` for a function."""
    rows = re.findall(r"^\| `(vidwatch[\w./]*)` \| (\d+) lines \| (.+?) \|$", doc, re.MULTILINE)
    for name, _, reason in rows:
        assert len(reason.split()) >= 4, f"the exception {name} needs a reason"
    return {name: int(ceiling) for name, ceiling, _ in rows}


def functions(module: Module) -> dict[str, int]:
    """Every function and method of the module, nested ones too, by qualified name, with
    its length in lines (decorators excluded, docstring included)."""
    sizes: dict[str, int] = {}

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}.{child.name}"
                if not isinstance(child, ast.ClassDef):
                    sizes[name] = (child.end_lineno or child.lineno) - child.lineno + 1
                walk(child, name)
            else:
                walk(child, prefix)

    walk(module.tree, module.name)
    return sizes


def oversized(modules: dict[str, Module]) -> dict[str, int]:
    """Modules over MAX_MODULE_LINES (by path) and functions of jobs/ and daemon/ over
    MAX_FUNCTION_LINES (by qualified name), with their sizes."""
    found = {}
    for module in modules.values():
        if module.lines > MAX_MODULE_LINES:
            found[module.path.relative_to(ROOT).as_posix()] = module.lines
        if module.package in FUNCTION_LIMITED:
            found.update(
                (name, size)
                for name, size in functions(module).items()
                if size > MAX_FUNCTION_LINES
            )
    return found


# --- the tests --------------------------------------------------------------------------------
def test_no_import_cycle() -> None:
    found = cycles(import_graph(parse_modules()))
    assert found == [], f"import cycles between vidwatch modules: {found}"


def order_violations(modules: dict[str, Module], order: list[str]) -> list[str]:
    """Imports of a package from its own level or below in ``order`` (top first)."""
    rank = {name: i for i, name in enumerate(order)} | dict.fromkeys(BESIDE, -1)
    wrong = []
    for name, imported in import_graph(modules).items():
        importer = modules[name].package
        for target in imported:
            to = modules[target].package
            if to != importer and to not in BESIDE and rank[to] >= rank[importer]:
                wrong.append(f"{name} -> {target}")
    return sorted(wrong)


def test_packages_import_only_the_packages_above_them() -> None:
    order = package_order(architecture())
    modules = parse_modules()
    packages = {m.package for m in modules.values()} - set(BESIDE)
    assert sorted(order) == sorted(packages), "the table must name every package once"
    wrong = order_violations(modules, order)
    assert wrong == [], f"imports against the table's order: {wrong}"


def test_sizes_within_the_limits_or_named() -> None:
    doc = architecture()
    assert f"no module over {MAX_MODULE_LINES} lines" in doc
    assert f"no function over {MAX_FUNCTION_LINES} lines" in doc
    named = exceptions(doc)
    found = oversized(parse_modules())
    unnamed = {name: size for name, size in found.items() if name not in named}
    assert unnamed == {}, f"over the limit and not named in docs/architecture.md: {unnamed}"
    over_ceiling = {n: (found[n], c) for n, c in named.items() if n in found and found[n] > c}
    assert over_ceiling == {}, f"grown past the ceiling the document gives: {over_ceiling}"
    stale = sorted(set(named) - set(found))
    assert stale == [], f"named as exceptions but within the limits now: {stale}"


# --- the probes can fail ----------------------------------------------------------------------
def _write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_probe_finds_a_cycle_through_an_import_inside_a_function(tmp_path: Path) -> None:
    root = tmp_path / "vidwatch"
    _write(root, "__init__.py", "")
    _write(root, "a/__init__.py", "")
    _write(root, "a/one.py", "def f():\n    from vidwatch.b.two import g\n    return g\n")
    _write(root, "b/__init__.py", "")
    _write(root, "b/two.py", "from ..a import one\n\ndef g():\n    return one\n")
    _write(root, "b/three.py", "from vidwatch.a.one import f\n")
    graph = import_graph(parse_modules(root))
    assert graph["vidwatch.a.one"] == {"vidwatch.b.two"}
    assert graph["vidwatch.b.three"] == {"vidwatch.a.one"}
    assert cycles(graph) == [["vidwatch.a.one", "vidwatch.b.two"]]


def test_probe_measures_nested_functions(tmp_path: Path) -> None:
    root = tmp_path / "vidwatch"
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    _write(root, "jobs/big.py", f"class C:\n    def run(self):\n{body}\n")
    modules = parse_modules(root)
    assert functions(modules["vidwatch.jobs.big"]) == {
        "vidwatch.jobs.big.C.run": MAX_FUNCTION_LINES + 1
    }
    assert "vidwatch.jobs.big.C.run" in oversized(modules)


def test_probe_finds_an_import_against_the_order(tmp_path: Path) -> None:
    root = tmp_path / "vidwatch"
    _write(root, "errors.py", "")
    _write(root, "low/__init__.py", "from vidwatch import errors\n")
    _write(root, "high/__init__.py", "def f():\n    import vidwatch.low\n")
    modules = parse_modules(root)
    assert order_violations(modules, ["low", "high"]) == []
    assert order_violations(modules, ["high", "low"]) == ["vidwatch.high -> vidwatch.low"]
    doc = "| `low` | x | y |\n| `high` | x | low |\n"
    assert package_order(doc) == ["low", "high"]
