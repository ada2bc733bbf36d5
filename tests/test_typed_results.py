"""Results stay typed from the pipeline to the exports, the pages and the API, read from the
code with ``ast`` (as ``tests/test_structure.py`` reads the structure):

- one family of geometry types: ``Box`` and ``Point`` are defined once, in
  ``vidwatch/detectors/types.py`` (the package the others may import), and imported
  everywhere else;
- the code that takes a job's results (the exports, the whole-video views, the pages, the
  catalog's rows, the job runner, the API's job page) takes the models of
  ``vidwatch/pipeline/documents.py``, not ``dict[str, Any]``: no parameter named for a part
  of results.json is annotated with ``dict``, ``list[dict...]`` or ``Any``, and the exports
  and the timeline hold no ``Any`` at all;
- one function writes a time in a video as text (``vidwatch.times.video_time``) and one a
  wall-clock time (``utc_time``): no other module formats with ``strftime`` or
  ``isoformat``, nor spells ``:02d`` hours and minutes (but for a format of a protocol's
  own, named in ``FORMAT_SPECIFIC``).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vidwatch"

TAKE_RESULTS = (
    "pipeline/exports.py",
    "pipeline/timeline.py",
    "pipeline/views.py",
    "report/render.py",
    "catalog/rows.py",
    "jobs/run.py",
    "api/pages.py",
)
"""The modules that take a job's results (``report/people.py`` renders library persons,
the API's own JSON, and is not one)."""
RESULT_PARTS = {"results", "frame", "frames", "scene", "scenes", "people", "person", "entry"}
"""Parameter names that hold results.json or a part of it."""
NO_ANY = ("pipeline/exports.py", "pipeline/timeline.py")
TIME_TEXT = PACKAGE / "times.py"
FORMAT_SPECIFIC = {"vidwatch/r2/presign.py": "SigV4's X-Amz-Date, a basic-format stamp AWS fixes"}
"""Modules that write a time in a format of their own, and why."""

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


def _functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def untyped_result_parameters(tree: ast.Module) -> list[str]:
    """``function(parameter: annotation)`` for each parameter named for a part of results
    whose annotation is ``dict[str, ...]`` (alone or inside) or ``Any``."""
    found = []
    for function in _functions(tree):
        args = function.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            if arg.arg not in RESULT_PARTS or arg.annotation is None:
                continue
            annotation = ast.unparse(arg.annotation)
            if "dict[str" in annotation or "Any" in annotation:
                found.append(f"{function.name}({arg.arg}: {annotation})")
    return found


def test_the_code_that_takes_results_takes_the_models() -> None:
    untyped = {
        name: untyped_result_parameters(_parse(PACKAGE / name))
        for name in TAKE_RESULTS
        if untyped_result_parameters(_parse(PACKAGE / name))
    }
    assert untyped == {}
    with_any = [name for name in NO_ANY if "Any" in (PACKAGE / name).read_text(encoding="utf-8")]
    assert with_any == []


def test_the_probe_sees_results_as_dicts() -> None:
    """The check finds what it looks for (the views as they were, on dicts)."""
    old = ast.parse(
        "def scene_cast(results: dict[str, Any]) -> dict[int, list[int]]: ...\n"
        "def title(scene: dict[str, Any], cast: list[int]) -> str: ...\n"
        "def rows(frames: list[dict[str, Any]], keep: Any) -> None: ...\n"
    )
    assert untyped_result_parameters(old) == [
        "scene_cast(results: dict[str, Any])",
        "title(scene: dict[str, Any])",
        "rows(frames: list[dict[str, Any]])",
    ]


def time_formatting(tree: ast.Module) -> list[str]:
    """Calls of ``strftime``/``isoformat`` and f-strings with a ``02d`` field."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("strftime", "isoformat"):
                found.append(f"line {node.lineno}: {node.func.attr}")
        elif (
            isinstance(node, ast.FormattedValue)
            and node.format_spec is not None
            and "02d" in ast.unparse(node.format_spec)
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node.value)}:02d")
    return found


def test_times_are_written_as_text_in_one_module() -> None:
    found = {
        str(path.relative_to(ROOT)): formats
        for path, tree in _trees().items()
        if path != TIME_TEXT and (formats := time_formatting(tree))
    }
    assert set(found) == set(FORMAT_SPECIFIC)
    assert time_formatting(_parse(TIME_TEXT))  # the probe finds them where they are


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))
