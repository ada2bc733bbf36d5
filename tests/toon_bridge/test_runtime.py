"""The Node runtime: its pin, first-use install, missing tools, and the one-shot CLI mode."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from vidwatch.toon_bridge import RUNTIME_DIR, ToonBridge, ToonUnavailable, pinned_version
from vidwatch.toon_bridge.samples import frame_documents

LIB = "@toon-format/toon"


def _copy_runtime(dest: Path) -> Path:
    for name in ("package.json", "package-lock.json", "convert_toon.mjs"):
        shutil.copy2(RUNTIME_DIR / name, dest / name)
    return dest


def test_library_is_pinned_exactly_in_package_and_lock() -> None:
    pkg = json.loads((RUNTIME_DIR / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((RUNTIME_DIR / "package-lock.json").read_text(encoding="utf-8"))
    spec = pkg["dependencies"][LIB]
    assert re.fullmatch(r"\d+\.\d+\.\d+", spec), f"{LIB} must be pinned exactly, not {spec!r}"
    assert lock["packages"][""]["dependencies"][LIB] == spec
    entry = lock["packages"][f"node_modules/{LIB}"]
    assert entry["version"] == spec == pinned_version()
    assert entry["integrity"].startswith("sha512-")


def test_missing_node_says_what_to_do(tmp_path: Path) -> None:
    bridge = ToonBridge(node_binary=str(tmp_path / "no-node-here"))
    with pytest.raises(ToonUnavailable) as info:
        bridge.start()
    message = str(info.value)
    assert "not found" in message and "Node.js" in message
    assert "TOON_ENABLED=false" in message


def test_first_use_runs_npm_ci_and_reinstalls_a_wrong_version(tmp_path: Path, node: str) -> None:
    runtime = _copy_runtime(tmp_path)
    installed = runtime / "node_modules" / LIB / "package.json"
    assert not installed.exists()
    bridge = ToonBridge(node_binary=node, runtime_dir=runtime)
    assert bridge.version == pinned_version()  # before install: the pinned one
    with bridge:
        assert installed.is_file()
        assert bridge.version == pinned_version()
        assert bridge.encode({"a": [1, 2]}) == "a[2]: 1,2"
    # an install at another version than the lock's is replaced on the next start
    meta = json.loads(installed.read_text(encoding="utf-8"))
    installed.write_text(json.dumps({**meta, "version": "0.0.1"}), encoding="utf-8")
    with ToonBridge(node_binary=node, runtime_dir=runtime) as again:
        assert json.loads(installed.read_text(encoding="utf-8"))["version"] == pinned_version()
        assert again.version == pinned_version()


def test_missing_npm_when_an_install_is_needed(tmp_path: Path, node: str) -> None:
    bridge = ToonBridge(
        node_binary=node, runtime_dir=_copy_runtime(tmp_path), npm_binary="no-such-npm-xyz"
    )
    with pytest.raises(ToonUnavailable) as info:
        bridge.start()
    message = str(info.value)
    assert f"{LIB}@{pinned_version()}" in message and "npm ci" in message
    assert "TOON_ENABLED=false" in message


def test_failing_npm_ci_is_reported_with_its_output(tmp_path: Path, node: str) -> None:
    runtime = _copy_runtime(tmp_path)
    (runtime / "package.json").write_text("{", encoding="utf-8")
    with pytest.raises(ToonUnavailable, match=r"npm ci` failed .*EJSONPARSE"):
        ToonBridge(node_binary=node, runtime_dir=runtime).start()


def test_encode_starts_the_bridge_lazily(node: str) -> None:
    bridge = ToonBridge(node_binary=node)
    try:
        assert bridge.pid is None
        assert bridge.ping()
        assert bridge.pid is not None
    finally:
        bridge.close()


def test_one_shot_mode_matches_the_helper(bridge: ToonBridge, node: str) -> None:
    doc = frame_documents(3, seed=5)[2]
    script = str(RUNTIME_DIR / "convert_toon.mjs")
    once = subprocess.run(
        [node, script, "--once"], input=json.dumps(doc), capture_output=True, text=True, check=True
    )
    assert once.stdout == bridge.encode(doc)
    back = subprocess.run(
        [node, script, "--once", "--decode"],
        input=once.stdout,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(back.stdout) == doc
    bad = subprocess.run([node, script, "--once"], input="{", capture_output=True, text=True)
    assert bad.returncode == 1 and "SyntaxError" in bad.stderr


def test_helper_protocol_answers_every_line_by_id(bridge: ToonBridge, node: str) -> None:
    # Raw protocol, no client: a malformed request is still answered under its id, so a
    # caller is never left waiting for the watchdog.
    lines = [
        '{"id":5,"op":"encode","doc":{"a":"x,y"}}',
        '{"id":6,"op":"encode","doc":NaN}',
        '{"id":7,"op":"decode","text":"a[2]: 1"}',
        '{"id":8,"op":"nope"}',
        '{"id":9,"op":"ping"}',
    ]
    proc = subprocess.run(
        [node, str(RUNTIME_DIR / "convert_toon.mjs")],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    ready, *answers = (json.loads(line) for line in proc.stdout.splitlines())
    assert ready["ready"] is True and ready["version"] == pinned_version()
    assert [a["id"] for a in answers] == [5, 6, 7, 8, 9]
    assert answers[0] == {"id": 5, "ok": True, "result": 'a: "x,y"'}
    assert [a["ok"] for a in answers] == [True, False, False, False, True]
    assert "invalid request line" in answers[1]["error"]
    assert answers[2]["error"].startswith("ToonDecodeError:")
    assert answers[3]["error"] == 'unknown op: "nope"'
