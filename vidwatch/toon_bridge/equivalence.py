"""Strict equality of JSON values, as a round-trip check needs it.

Python's ``==`` is too lenient for "decode(encode(doc)) gives back doc exactly": ``True == 1``
and ``1.0 == True`` hold, so a boolean that came back as a number would pass unnoticed.
:func:`json_difference` compares two JSON-compatible values the way JSON (and JavaScript)
sees them:

- booleans, ``None``, strings, lists and dicts must match in kind and content; lists in order,
  dicts by key set (key order is not part of JSON equality; JavaScript objects also list
  integer-like keys first, so the order can change on the way through Node);
- numbers compare by value: ``2.0`` and ``2`` are the same JSON number (JavaScript has one
  number type, so a ``2.0`` goes into Node and ``2`` comes back), and ``-0.0`` equals ``0``.
  Integers compare exactly, so an integer beyond 2**53 that came back rounded is a difference.
"""

from __future__ import annotations

from typing import Any


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_difference(expected: Any, actual: Any, path: str = "$") -> str | None:
    """Where ``actual`` first differs from ``expected``, as a readable string; ``None`` if equal."""
    if _is_number(expected) or _is_number(actual):
        if not (_is_number(expected) and _is_number(actual)):
            return f"{path}: expected {expected!r}, got {actual!r}"
        if expected != actual:  # int == float compares exact values in Python
            return f"{path}: expected number {expected!r}, got {actual!r}"
        return None
    if type(expected) is not type(actual):
        return f"{path}: expected {type(expected).__name__} {expected!r}, got {actual!r}"
    if isinstance(expected, dict):
        if expected.keys() != actual.keys():
            missing = sorted(set(expected) - set(actual))
            extra = sorted(set(actual) - set(expected))
            return f"{path}: keys differ (missing {missing}, extra {extra})"
        for key, value in expected.items():
            diff = json_difference(value, actual[key], f"{path}.{key}")
            if diff:
                return diff
        return None
    if isinstance(expected, list):
        if len(expected) != len(actual):
            return f"{path}: expected {len(expected)} items, got {len(actual)}"
        for i, (a, b) in enumerate(zip(expected, actual, strict=True)):
            diff = json_difference(a, b, f"{path}[{i}]")
            if diff:
                return diff
        return None
    if expected != actual:
        return f"{path}: expected {expected!r}, got {actual!r}"
    return None


def json_equivalent(expected: Any, actual: Any) -> bool:
    """True when the two values are the same JSON value (see the module docstring)."""
    return json_difference(expected, actual) is None
