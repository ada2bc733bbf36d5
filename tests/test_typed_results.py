"""Results stay typed from the pipeline to the exports, the pages and the API, read from the
code with ``ast`` (as ``tests/test_structure.py`` reads the structure):

- one family of geometry types: ``Box`` and ``Point`` are defined once, in
  ``vidwatch/detectors/types.py`` (the package the others may import), and imported
  everywhere else;
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vidwatch"

GEOMETRY = ("Box", "Point")
GEOMETRY_HOME = PACKAGE / "detectors" / "types.py"


def _trees() -> dict[Path, ast.Module]:
    return {
        path: ast.parse(path.read_text(encoding="utf-8"), str(path))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _defined_at_top(tree: ast.Module) -> set[str]:
    """Names a module binds at its top level: assignments, classes, annotated names."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
    return names


def test_box_and_point_are_defined_once() -> None:
    homes = {
        name: sorted(
            str(path.relative_to(ROOT))
            for path, tree in _trees().items()
            if name in _defined_at_top(tree)
        )
        for name in GEOMETRY
    }
    home = str(GEOMETRY_HOME.relative_to(ROOT))
    assert homes == {name: [home] for name in GEOMETRY}
