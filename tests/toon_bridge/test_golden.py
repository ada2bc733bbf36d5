"""Golden cases: the exact TOON text @toon-format/toon writes for tricky values, and what
its decode() gives back.

The expected texts are the library's own output (pinned version, default options), checked
by hand against the TOON spec: quoting of strings that contain the delimiter, a colon, quotes,
control characters or edge spaces or that look like numbers/keywords/list items; ``[]`` and an
empty key for empty arrays and objects; ``[N]:`` list items for nested arrays; canonical
numbers; ``{fields}`` tables for uniform arrays of objects. A library upgrade that changes any
of them fails here, on purpose.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from vidwatch.toon_bridge import ToonBridge, ToonError, json_difference, pinned_version

# name -> (document, exact TOON text); each of these round-trips exactly
GOLDEN: dict[str, tuple[Any, str]] = {
    "comma": ({"label": "a,b"}, 'label: "a,b"'),
    "colon": ({"note": "key: value"}, 'note: "key: value"'),
    "quotes": ({"q": 'say "hi"'}, 'q: "say \\"hi\\""'),
    "newline_cr_tab": (
        {"text": "line1\nline2\r\nend\t."},
        'text: "line1\\nline2\\r\\nend\\t."',
    ),
    "leading_trailing_space": (
        {"s": "  lead", "t": "trail "},
        's: "  lead"\nt: "trail "',
    ),
    "unicode": (
        # non-ASCII values stay bare; a non-ASCII key is quoted (not an identifier)
        {"name": "Zoë 日本語 🎥", "ключ": "значение"},
        'name: Zoë 日本語 🎥\n"ключ": значение',
    ),
    "lookalike_strings": (
        {
            "a": "true",
            "b": "42",
            "c": "null",
            "d": "-",
            "e": "",
            "f": "1e-7",
            "g": "- item",
            "h": "[3]: x",
            "i": "#tag",
        },
        'a: "true"\nb: "42"\nc: "null"\nd: "-"\ne: ""\nf: "1e-7"\ng: "- item"\n'
        'h: "[3]: x"\ni: "#tag"',
    ),
    "empty_array_and_object": (
        {"objects": [], "images": {}, "nested": {"inner": []}},
        "objects: []\nimages:\nnested:\n  inner: []",
    ),
    "empty_root_object": ({}, ""),
    "empty_root_array": ([], "[]"),
    "nested_arrays": (
        {"polygon": [[12.5, 30.5], [15.25, 31.75]], "ragged": [[1, [2, [3]]], [], ["x"]]},
        "polygon[2]:\n  - [2]: 12.5,30.5\n  - [2]: 15.25,31.75\n"
        "ragged[3]:\n  - [2]:\n    - 1\n    - [2]:\n      - 2\n      - [1]: 3\n"
        "  - [0]:\n  - [1]: x",
    ),
    "numbers": (
        {
            "tiny": 1e-7,
            "big_float": 1.5e300,
            "max_safe": 9007199254740991,
            "neg": -12.75,
            "int": 42,
            "third": 0.1 + 0.2,
        },
        "tiny: 1e-7\nbig_float: 1.5e+300\nmax_safe: 9007199254740991\nneg: -12.75\nint: 42\n"
        "third: 0.30000000000000004",
    ),
    "uniform_objects_table": (
        {
            "objects": [
                {"label": "person", "class_id": 0, "confidence": 0.91},
                {"label": "traffic light", "class_id": 9, "confidence": 0.5},
                {"label": "a,b", "class_id": 1, "confidence": 1e-7},
            ]
        },
        "objects[3]{label,class_id,confidence}:\n"
        "  person,0,0.91\n  traffic light,9,0.5\n"
        '  "a,b",1,1e-7',
    ),
    "non_uniform_objects_list": (
        {"items": [{"a": 1}, {"a": 2, "b": 3}]},
        "items[2]:\n  - a: 1\n  - a: 2\n    b: 3",
    ),
    "mixed_array": (
        {"m": [1, "two", None, True, {"k": "v"}, [3]]},
        "m[6]:\n  - 1\n  - two\n  - null\n  - true\n  - k: v\n  - [1]: 3",
    ),
    "odd_keys": (
        # JavaScript objects list integer-like keys first, so "123" moves to the front
        {"key with space": 1, "a.b": 2, "": 3, "123": 4, "k:v": 5, "-": 6},
        '"123": 4\n"key with space": 1\na.b: 2\n"": 3\n"k:v": 5\n"-": 6',
    ),
    "root_string": ("hello, world", '"hello, world"'),
    "root_number": (3.25, "3.25"),
    "root_null": (None, "null"),
    "booleans": ({"t": True, "f": False, "n": None}, "t: true\nf: false\nn: null"),
}


def test_library_is_the_pinned_version(bridge: ToonBridge) -> None:
    assert bridge.version == pinned_version() == "4.4.0"


@pytest.mark.parametrize("name", list(GOLDEN))
def test_golden_encode_and_round_trip(bridge: ToonBridge, name: str) -> None:
    doc, expected = GOLDEN[name]
    text = bridge.encode(doc)
    assert text == expected
    back = bridge.decode(text)
    assert json_difference(doc, back) is None
    assert back == doc


def test_golden_cases_also_pass_as_one_batch(bridge: ToonBridge) -> None:
    docs = [doc for doc, _ in GOLDEN.values()]
    assert bridge.encode_many(docs) == [text for _, text in GOLDEN.values()]


def test_integral_floats_come_back_as_ints(bridge: ToonBridge) -> None:
    # JavaScript has one number type: 30.0 is written "30" and read back as 30 - the same
    # JSON number, but a Python int now.
    doc = {"x": 30.0, "box": [12.0, 30.5]}
    assert bridge.encode(doc) == "x: 30\nbox[2]: 12,30.5"
    back = bridge.decode(bridge.encode(doc))
    assert back == doc and type(back["x"]) is int and type(back["box"][1]) is float
    assert json_difference(doc, back) is None


def test_negative_zero_loses_its_sign(bridge: ToonBridge) -> None:
    # TOON canonicalises -0 to 0 (spec); equal as numbers, sign gone.
    text = bridge.encode({"z": -0.0})
    assert text == "z: 0"
    back = bridge.decode(text)["z"]
    assert back == 0 and type(back) is int
    assert math.copysign(1.0, back) == 1.0


def test_integers_beyond_2_53_are_rounded_by_javascript(bridge: ToonBridge) -> None:
    # Not exact, and said so: JSON.parse turns these into doubles before TOON sees them.
    # The pipeline emits no integers this large (frame numbers, class ids, counts).
    doc = {"n": 12345678901234567890, "just_over": 2**53 + 1}
    text = bridge.encode(doc)
    assert text == "n: 12345678901234567000\njust_over: 9007199254740992"
    back = bridge.decode(text)
    assert back == {"n": 12345678901234567000, "just_over": 2**53}
    assert json_difference(doc, back) == (
        "$.n: expected number 12345678901234567890, got 12345678901234567000"
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_not_silently_nulled(bridge: ToonBridge, bad: float) -> None:
    # The library would write NaN/Infinity as null; that is not a round trip, so refuse.
    with pytest.raises(ToonError, match="not strict JSON"):
        bridge.encode({"confidence": bad})
    assert bridge.encode({"ok": 1}) == "ok: 1"  # the helper is fine afterwards


def test_non_json_types_are_refused(bridge: ToonBridge) -> None:
    with pytest.raises(ToonError, match="document 1 is not strict JSON"):
        bridge.encode_many([{"a": 1}, {"b": {1, 2}}])


def test_malformed_toon_raises_with_the_library_message(bridge: ToonBridge) -> None:
    with pytest.raises(ToonError, match="Expected 2 inline-form values, but got 1"):
        bridge.decode("a[2]: 1")
    assert bridge.decode("a[2]: 1,2") == {"a": [1, 2]}
