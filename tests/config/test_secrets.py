"""Secret settings: secret types that never show in a repr, a log or an error, and read from
systemd's credentials folder (``LoadCredential=``, ``$CREDENTIALS_DIRECTORY``) as well as
from the environment, the environment winning where both are given."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.cli.refused_start import run_once
from vidwatch.config import ConfigError, load_settings
from vidwatch.config.settings import SECRET_SETTINGS, Settings

WEBHOOK = "whsec_" + "QUJD" * 8  # valid base64, 24 bytes
VALUES = {
    "API_TOKEN": "token-5b1f0c9e",
    "R2_SECRET_ACCESS_KEY": "r2-secret-77d2a4",
    "URL_SIGNING_SECRET": "signing-secret-3c8e19",
    "WEBHOOK_SECRET": WEBHOOK,
}


def credentials(folder: Path, **files: str) -> Path:
    """A credentials folder as systemd makes it: one file per credential, named after it."""
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_every_secret_setting_is_a_secret_type():
    assert {name.upper() for name in SECRET_SETTINGS} == set(VALUES)
    settings = load_settings(VALUES)
    for name in SECRET_SETTINGS:
        value = getattr(settings, name)
        assert isinstance(value, SecretStr), name
        assert value.get_secret_value() == VALUES[name.upper()]


def test_no_secret_shows_in_the_repr_or_the_dump_of_settings():
    settings = load_settings({**VALUES, "WEBHOOK_URLS": "http://127.0.0.1:9/in"})
    shown = repr(settings) + str(settings) + repr(settings.model_dump())
    shown += settings.model_dump_json()
    for value in VALUES.values():
        assert value not in shown
    assert "api_token=SecretStr('**********')" in repr(settings)


def test_blank_secrets_are_unset_and_given_ones_are_stripped():
    blank = load_settings({name: "  " for name in VALUES})
    assert all(getattr(blank, name) is None for name in SECRET_SETTINGS)
    padded = load_settings({"API_TOKEN": " t0ken \n"})
    assert padded.api_token is not None and padded.api_token.get_secret_value() == "t0ken"


def test_secrets_are_read_from_the_credentials_folder(tmp_path):
    folder = credentials(tmp_path / "creds", **{k: v + "\n" for k, v in VALUES.items()})
    settings = load_settings({"CREDENTIALS_DIRECTORY": str(folder)})
    for name in SECRET_SETTINGS:
        value = getattr(settings, name)
        assert value is not None and value.get_secret_value() == VALUES[name.upper()], name


def test_the_environment_wins_over_a_credential(tmp_path):
    folder = credentials(tmp_path / "creds", API_TOKEN="from-the-file\n")
    settings = load_settings({"CREDENTIALS_DIRECTORY": str(folder), "API_TOKEN": "from-env"})
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "from-env"
    # A blank value in the environment file is no value: the credential fills it.
    blank = load_settings({"CREDENTIALS_DIRECTORY": str(folder), "API_TOKEN": ""})
    assert blank.api_token is not None
    assert blank.api_token.get_secret_value() == "from-the-file"


def test_only_secret_settings_come_from_credentials(tmp_path):
    folder = credentials(tmp_path / "creds", SAMPLE_FPS="5\n", R2_BUCKET="b\n")
    settings = load_settings({"CREDENTIALS_DIRECTORY": str(folder)})
    assert settings.sample_fps == 1.0 and settings.r2_bucket is None


def test_without_the_variable_no_folder_is_read(tmp_path):
    credentials(tmp_path / "creds", API_TOKEN="t\n")
    assert load_settings({}).api_token is None


def test_a_bad_credential_is_one_line_naming_the_setting(tmp_path):
    folder = credentials(tmp_path / "creds")
    (folder / "API_TOKEN").symlink_to(tmp_path / "nowhere")  # named, but its file is gone
    (folder / "R2_SECRET_ACCESS_KEY").mkdir()  # named, but not a readable file
    (folder / "URL_SIGNING_SECRET").write_text("\n")  # named, but empty
    cases = {
        "API_TOKEN": "missing",
        "R2_SECRET_ACCESS_KEY": "unreadable",
        "URL_SIGNING_SECRET": "empty",
    }
    for name, word in cases.items():
        others = {n: "x" for n in cases if n != name}  # the environment wins over the others
        with pytest.raises(ConfigError) as err:
            load_settings({"CREDENTIALS_DIRECTORY": str(folder), **others})
        message = str(err.value)
        assert name in message and word in message and "\n" not in message, message
        assert err.value.setting == name


def test_a_credentials_folder_that_is_not_there_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="CREDENTIALS_DIRECTORY") as err:
        load_settings({"CREDENTIALS_DIRECTORY": str(tmp_path / "gone")})
    assert "\n" not in str(err.value)


def test_an_invalid_credential_is_named_and_never_shown(tmp_path):
    folder = credentials(tmp_path / "creds", WEBHOOK_SECRET="hunter2hunter2\n")
    with pytest.raises(ConfigError) as err:
        load_settings(
            {"CREDENTIALS_DIRECTORY": str(folder), "WEBHOOK_URLS": "http://127.0.0.1:9/in"}
        )
    assert "WEBHOOK_SECRET" in str(err.value) and "hunter2" not in str(err.value)


def test_settings_built_directly_take_plain_strings():
    settings = Settings(api_token="abc")  # type: ignore[arg-type]
    assert settings.api_token is not None and settings.api_token.get_secret_value() == "abc"


def test_run_reads_a_bad_credential_as_a_setting_to_fix(tmp_path):
    """``vidwatch run`` under a unit whose credential cannot be read: exit 2 (systemd does
    not restart it), one line naming the setting."""
    folder = credentials(tmp_path / "creds")
    (folder / "API_TOKEN").symlink_to(tmp_path / "nowhere")
    proc, lines = run_once(
        tmp_path, {"CREDENTIALS_DIRECTORY": str(folder)}, drop=lambda k: k in VALUES
    )
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "API_TOKEN" in lines[0], proc.stderr
