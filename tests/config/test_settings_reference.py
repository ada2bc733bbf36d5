"""The settings reference (docs/settings.md) against the code: every setting has a row under its
environment name, every row names a real setting, and the default a row gives is the code's
default. The table is what users read; this keeps it from drifting."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from vidwatch.config import Settings

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
_SIZES = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def settings_rows(page: str) -> list[tuple[list[str], str, str]]:
    """(names, default cell, meaning) of each row of the table under ``# Settings``."""
    section = page.split("# Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3 or cells[0] in ("setting", "---"):
            continue
        names = re.findall(r"`([A-Z0-9_]+)`", cells[0])
        rows.append((names, cells[1], cells[2]))
    return rows


def split_defaults(cell: str, count: int) -> list[str]:
    """One default per name: ``27, 15, 256``; one cell for all (``unset``); asides in
    parentheses (``67108864 (8192 x 8192)``) dropped."""
    plain = re.sub(r"\s*\([^)]*\)", "", cell)
    parts = [p.strip() for p in plain.split(",")]
    if len(parts) == 1:
        return parts * count
    assert len(parts) == count, f"{count} names, defaults {cell!r}"
    return parts


def parse_default(text: str) -> Any:
    text = text.strip().strip("`")
    if text == "unset":
        return None
    if text in ("true", "false"):
        return text == "true"
    size = re.fullmatch(r"(\d+) (KiB|MiB|GiB)", text)
    if size:
        return int(size.group(1)) * _SIZES[size.group(2)]
    try:
        return float(text)
    except ValueError:
        return text


def code_default(name: str) -> Any:
    value = Settings.model_fields[name].default
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value == "":  # an empty list setting (CORS_ORIGINS, WEBHOOK_URLS) reads as unset
        return None
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    return str(value)


def test_every_setting_has_a_row_with_the_codes_default():
    rows = settings_rows(REFERENCE.read_text())
    assert rows, "no settings table under # Settings"
    documented: dict[str, Any] = {}
    for names, cell, _ in rows:
        assert names, f"a row without a setting name: {cell!r}"
        for name, text in zip(names, split_defaults(cell, len(names)), strict=True):
            assert name not in documented, f"{name} has two rows"
            documented[name] = parse_default(text)
    fields = {name.upper(): name for name in Settings.model_fields}
    assert set(documented) - set(fields) == set(), "rows that name no setting"
    assert set(fields) - set(documented) == set(), "settings without a row"
    wrong = {
        env: (documented[env], code_default(field))
        for env, field in fields.items()
        if documented[env] != code_default(field)
    }
    assert wrong == {}, "docs/settings.md default != code default"


def test_no_row_names_a_second_default_in_its_meaning():
    """The default column is the one place for a default: a meaning that says "(default
    `X`)" beside it told users PUBLIC_BASE_URL defaulted to http://HTTP_HOST:HTTP_PORT while
    the code's links follow the request's Host."""
    stray = {
        names[0]: meaning
        for names, _, meaning in settings_rows(REFERENCE.read_text())
        if re.search(r"\(default `", meaning)
    }
    assert stray == {}


@pytest.mark.parametrize(
    ("cell", "count", "expected"),
    [
        ("unset", 4, [None] * 4),
        ("27, 15, 256", 3, [27.0, 15.0, 256.0]),
        ("67108864 (8192 x 8192), 21600", 2, [67108864.0, 21600.0]),
        ("2 GiB", 1, [2 * 1024**3]),
        ("`tmp_media`", 1, ["tmp_media"]),
        ("true, 127.0.0.1, 8000", 3, [True, "127.0.0.1", 8000.0]),
    ],
)
def test_the_cells_read_as_written(cell, count, expected):
    assert [parse_default(t) for t in split_defaults(cell, count)] == expected


def test_a_wrong_row_is_found():
    """The check can fail: a default changed in the table is reported."""
    page = REFERENCE.read_text().replace("| `SAMPLE_FPS` | 1.0 |", "| `SAMPLE_FPS` | 2.0 |")
    rows = {n: c for names, c, _ in settings_rows(page) for n in names}
    assert parse_default(rows["SAMPLE_FPS"]) == 2.0 != code_default("sample_fps")
