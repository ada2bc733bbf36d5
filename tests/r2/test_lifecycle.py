"""Lifecycle rules from the settings, the example payload, ``vidwatch r2 lifecycle``."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from vidwatch.config import load_settings
from vidwatch.r2.cli import add_r2_parser, run_r2
from vidwatch.r2.lifecycle import (
    ABORT_MULTIPART_RULE_ID,
    EXPIRE_INDEX_RULE_ID,
    EXPIRE_JOBS_RULE_ID,
    build_rules,
    merge_rules,
    rules_from_settings,
)

from ..conftest import REPO
from ..s3_servers import S3Bucket

EXAMPLE = REPO / "config" / "r2-lifecycle.example.json"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="vidwatch")
    add_r2_parser(top.add_subparsers(dest="command"))
    return top


def run(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_r2(parser().parse_args(argv), load_settings(env), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def rule(payload: dict, rule_id: str) -> dict:
    return next(r for r in payload["Rules"] if r["ID"] == rule_id)


def test_the_example_payload_is_what_the_default_settings_give() -> None:
    assert json.loads(EXAMPLE.read_text()) == rules_from_settings(load_settings({}))


def test_rules_follow_the_settings() -> None:
    payload = rules_from_settings(
        load_settings({"R2_RETENTION_DAYS": "30", "R2_ABORT_MULTIPART_DAYS": "2"})
    )
    expire = rule(payload, EXPIRE_JOBS_RULE_ID)
    assert expire["Filter"] == {"Prefix": "jobs/"}
    assert expire["Expiration"] == {"Days": 30}
    assert expire["Status"] == "Enabled"
    abort = rule(payload, ABORT_MULTIPART_RULE_ID)
    assert abort["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}
    assert abort["Filter"] == {"Prefix": ""}
    with pytest.raises(ValueError):
        build_rules(retention_days=0, abort_multipart_days=1)


def test_merge_keeps_other_rules_and_replaces_ours() -> None:
    foreign = {
        "ID": "someone-elses",
        "Status": "Enabled",
        "Filter": {"Prefix": "logs/"},
        "Expiration": {"Days": 90},
    }
    stale = {
        "ID": EXPIRE_JOBS_RULE_ID,
        "Status": "Enabled",
        "Filter": {"Prefix": "jobs/"},
        "Expiration": {"Days": 1},
    }
    ours = build_rules(retention_days=7, abort_multipart_days=1)["Rules"]
    merged = merge_rules([foreign, stale], ours)
    assert merged == [foreign, *ours]


def test_cli_print() -> None:
    code, out, err = run(["r2", "lifecycle", "--print"], {"R2_RETENTION_DAYS": "14"})
    assert (code, err) == (0, "")
    printed = json.loads(out)
    assert printed == build_rules(retention_days=14, abort_multipart_days=1)


@pytest.mark.parametrize(
    "argv", [["r2", "lifecycle"], ["r2", "lifecycle", "--print", "--apply"], ["r2"]]
)
def test_cli_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parser().parse_args(argv)
    assert info.value.code == 2


def test_cli_apply_needs_r2() -> None:
    code, out, err = run(["r2", "lifecycle", "--apply"], {})
    assert code == 2 and out == ""
    assert "R2_BUCKET" in err and "R2_ACCESS_KEY_ID" in err


def test_cli_apply(s3_bucket: S3Bucket) -> None:
    client = s3_bucket.client()
    foreign = {
        "ID": "someone-elses",
        "Status": "Enabled",
        "Filter": {"Prefix": "logs/"},
        "Expiration": {"Days": 90},
    }
    client.put_bucket_lifecycle_configuration(
        Bucket=s3_bucket.name, LifecycleConfiguration={"Rules": [foreign]}
    )
    env = s3_bucket.env() | {"R2_RETENTION_DAYS": "9", "R2_ABORT_MULTIPART_DAYS": "3"}
    for _ in range(2):  # applying again changes nothing
        code, out, err = run(["r2", "lifecycle", "--apply"], env)
        assert (code, err) == (0, "")
        rules = client.get_bucket_lifecycle_configuration(Bucket=s3_bucket.name)["Rules"]
        assert sorted(r["ID"] for r in rules) == sorted(
            ["someone-elses", ABORT_MULTIPART_RULE_ID, EXPIRE_JOBS_RULE_ID, EXPIRE_INDEX_RULE_ID]
        )
        by_id = {r["ID"]: r for r in rules}
        assert by_id[EXPIRE_JOBS_RULE_ID]["Expiration"] == {"Days": 9}
        assert by_id[EXPIRE_JOBS_RULE_ID]["Filter"]["Prefix"] == "jobs/"
        assert by_id[EXPIRE_INDEX_RULE_ID]["Filter"]["Prefix"] == "index/"
        assert by_id[EXPIRE_INDEX_RULE_ID]["Expiration"] == {"Days": 9}
        assert by_id[ABORT_MULTIPART_RULE_ID]["AbortIncompleteMultipartUpload"] == {
            "DaysAfterInitiation": 3
        }
        assert by_id["someone-elses"]["Expiration"] == {"Days": 90}
        assert json.loads(out)["applied"] == [
            ABORT_MULTIPART_RULE_ID,
            EXPIRE_JOBS_RULE_ID,
            EXPIRE_INDEX_RULE_ID,
        ]
    client.close()


def test_cli_apply_names_the_bucket_setting(moto_bucket: S3Bucket) -> None:
    env = moto_bucket.env() | {"R2_BUCKET": "vw-no-such-bucket"}
    code, out, err = run(["r2", "lifecycle", "--apply"], env)
    assert code == 1 and out == ""
    assert "R2_BUCKET" in err


def test_read_back_check_ignores_fields_a_server_adds() -> None:
    from vidwatch.r2.lifecycle import _same_rule

    sent = rule(build_rules(retention_days=7, abort_multipart_days=1), EXPIRE_JOBS_RULE_ID)
    extra = {**sent, "Expiration": {"Days": 7, "ExpiredObjectDeleteMarker": False}}
    old_style = {k: v for k, v in sent.items() if k != "Filter"} | {"Prefix": "jobs/"}
    assert _same_rule(sent, extra)
    assert _same_rule(sent, old_style)
    assert not _same_rule(sent, {**sent, "Expiration": {"Days": 8}})
    assert not _same_rule(sent, {**sent, "Status": "Disabled"})
    assert not _same_rule(sent, {**sent, "Filter": {"Prefix": "job/"}})
    assert not _same_rule(sent, {k: v for k, v in sent.items() if k != "Expiration"})
    assert not _same_rule(sent, None)
