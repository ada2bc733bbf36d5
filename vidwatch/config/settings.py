"""One typed settings object, read from the environment once at start-up.

Names and defaults of the user's document (``R2_*``, ``TEMP_MEDIA_DIR``,
``CLEANUP_LOCAL_VIDEO_AFTER_UPLOAD_DEFAULT``) are kept as written there; the rest are ours.
Every invalid value stops the start with one line that names the setting.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from vidwatch.errors import VidwatchError

REQUIRED_R2_SETTINGS = ("R2_BUCKET", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY")
SECRET_SETTINGS = frozenset(
    {"r2_secret_access_key", "api_token", "url_signing_secret", "webhook_secret"}
)
"""Settings whose values never appear in an error line or a log: typed ``SecretStr`` (a repr
shows ``**********``; ``.get_secret_value()`` at the edge that uses them) and also read
from systemd's credentials folder (``load_settings``)."""
CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"
"""Set by systemd for a unit with ``LoadCredential=NAME:PATH``: a private folder holding one
file per credential, named ``NAME``."""
WEBHOOK_SECRET_PREFIX = "whsec_"
WEBHOOK_SECRET_BYTES = (24, 64)
"""Standard Webhooks 1.0: a secret is 24 to 64 random bytes, base64 after ``whsec_``."""


# --- what changes a result: the one declaration ------------------------------------------
CHANGES_RESULTS = "changes_results"
BY_WEIGHTS = "by_weights"


def changes_results(default: Any, **constraints: Any) -> Any:
    """A setting whose value changes what an analysis yields: its value goes into the
    content key (``jobs.dedupe``), the provenance ``settings`` of results.json and their
    schema (``pipeline.documents``), all read from ``result_settings``."""
    return Field(default, json_schema_extra={CHANGES_RESULTS: True}, **constraints)


def changes_results_by_weights(default: Any, **constraints: Any) -> Any:
    """A setting naming weights: what changes a result is the weights it loads, which go
    into the content key and the provenance as the model's name and sha256, not the name
    or path the setting gives them."""
    return Field(default, json_schema_extra={CHANGES_RESULTS: BY_WEIGHTS}, **constraints)


def keeps_results(default: Any, **constraints: Any) -> Any:
    """A setting the analysis reads that does not change what it yields (workers, paths,
    timeouts, limits that fail a job rather than change its result): declared so, for
    ``tests/config/test_result_settings.py``, which fails on an analysis setting declared
    neither way."""
    return Field(default, json_schema_extra={CHANGES_RESULTS: False}, **constraints)


class ConfigError(VidwatchError):
    """A setting is missing or invalid; the message is one line naming it. ``settings``
    names the settings to fix where the raiser knows them (for the log's ``setting``)."""

    def __init__(self, message: str, *, settings: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.settings = settings

    @property
    def setting(self) -> str | None:
        return ", ".join(self.settings) or None


class Settings(BaseModel):
    """Every setting, validated. Built by load_settings from exactly the environment it is
    given (a plain model, so nothing else is read behind the caller's back)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- the user's document -------------------------------------------------------------
    r2_account_id: str | None = None
    r2_bucket: str | None = None
    r2_access_key_id: str | None = None
    r2_secret_access_key: SecretStr | None = None
    r2_url_ttl_seconds: int = Field(3600, ge=1, le=7 * 24 * 3600)
    r2_retention_days: int = Field(7, ge=1)
    r2_abort_multipart_days: int = Field(1, ge=1)
    temp_media_dir: Path = keeps_results(Path("tmp_media"))
    cleanup_local_video_after_upload_default: bool = True

    # --- object store ---------------------------------------------------------------------
    r2_endpoint_url: str | None = None
    """Replaces the endpoint derived from R2_ACCOUNT_ID (any S3-compatible server)."""
    r2_region: str = "auto"
    local_store_dir: Path = Path("store")
    """The embedded store's folder, used when no R2 settings are given."""
    store_probe_timeout_s: float = Field(3.0, gt=0, le=60)
    """Bound of the store calls someone waits on: /healthz's probe, GET /status, /results."""
    catalog_path: Path | None = None
    """The catalog's SQLite file (derived from the store, safe to delete); default
    ``catalog.sqlite3`` beside LOCAL_STORE_DIR's folder."""

    # --- analysis -------------------------------------------------------------------------
    sample_fps: float = changes_results(1.0, gt=0, le=240)
    detect_model: str = changes_results_by_weights("yolo11n-seg.pt")
    """Objects come from this model; the default names the segmentation model's weights, so
    one -seg pass serves objects and masks (docs/performance.md); yolo11n.pt (the earlier
    default) runs a separate detection model."""
    segment_model: str = changes_results_by_weights("yolo11n-seg.pt")
    object_min_confidence: float = changes_results(0.25, ge=0, le=1)
    face_min_confidence: float = changes_results(0.9, ge=0, le=1)
    face_int8: bool = changes_results(False)
    """True: on OpenVINO, MTCNN's P-Net and R-Net run int8 (quantized once into MODEL_CACHE_DIR
    with NNCF), about 14 ms a 720p frame faster, but it found a false face that fp32 does not on
    the benchmark video (docs/performance.md); false (the default): every net in fp32."""
    model_device: str = keeps_results("auto")
    model_backend: Literal["auto", "torch", "openvino", "onnx"] = keeps_results("auto")
    """Where YOLO and MTCNN's nets run; auto: OpenVINO on the CPU, PyTorch on a GPU."""
    model_cache_dir: Path = keeps_results(Path("model_cache"))
    """Exports of the weights for OpenVINO / ONNX Runtime, made once per weights sha256."""
    model_batch_size: int = keeps_results(4, ge=1, le=64)
    model_workers: int = keeps_results(0, ge=0, le=32)
    """Model lanes: sampled frames (batches) analysed at once, each lane with its own copy of
    the models. 0: one per CPU core on OpenVINO (each lane single-threaded), at most 4; one
    on PyTorch and on a GPU."""
    allow_model_download: bool = keeps_results(True)
    """When false, a model name whose weights are not on disk fails at once (no network)."""
    scene_threshold: float = changes_results(27.0, gt=0)
    scene_min_len_frames: int = changes_results(15, ge=0)
    scene_downscale_width: int = changes_results(256, ge=16)
    faces_enabled: bool = changes_results(True)
    face_identities: bool = changes_results(True)
    """Group the faces of a job into people (dlib descriptors on the MTCNN boxes)."""
    face_identity_threshold: float = changes_results(0.6, gt=0, le=2)
    """Largest descriptor distance at which two faces are the same person (dlib's 0.6)."""
    face_identity_min_px: int = changes_results(32, ge=8)
    """Smallest face side (px) that gets a descriptor; smaller faces have person null."""
    face_identity_reuse_iou: float = changes_results(0.5, ge=0, le=1)
    """A face overlapping (IoU at least this) a face of the previous sampled frame of the same
    scene keeps that face's person without a new descriptor; 0 describes every face."""
    face_library: bool = changes_results(True)
    """Link every job's people to the library of people in the store (``library/``), so
    one person has one id across videos and can be named; false: per-job people only."""
    face_match_threshold: float = changes_results(0.6, gt=0, le=2)
    """Largest descriptor distance at which a job's person is a library person (measured on
    real photos: same person 0.24-0.42, different people 0.70 and more)."""
    max_video_pixels: int = keeps_results(8192 * 8192, ge=1)
    max_video_duration_s: float = keeps_results(6 * 3600.0, gt=0)
    jpeg_quality: int = changes_results(85, ge=10, le=100)
    write_workers: int = keeps_results(4, ge=1, le=64)
    torch_threads: int = keeps_results(0, ge=0)
    """0: leave torch's default."""

    # --- TOON ---------------------------------------------------------------------------------
    toon_enabled: bool = changes_results(True)
    node_binary: str = keeps_results("node")
    toon_timeout_s: float = keeps_results(30.0, gt=0)

    # --- daemon ----------------------------------------------------------------------------
    inbox_dir: Path = Path("inbox")
    inbox_settle_s: float = Field(2.0, ge=0)
    inbox_rescan_s: float = Field(30.0, gt=0)
    inbox_stage_attempts: int = Field(6, ge=1, le=100)
    """Tries to stage an inbox file (disk full, staging not writable) before it goes to
    failed/; the waits between tries double from 2 x INBOX_SETTLE_S (at least 1 s)."""
    inbox_force_polling: bool = False
    """Poll the inbox instead of inotify (network mounts, where no events arrive)."""
    bucket_poll_s: float = Field(10.0, gt=0)
    staging_full_retry_max_s: float = Field(600.0, gt=0)
    """A job whose source in the store does not fit in TEMP_MEDIA_DIR waits and tries the
    download again, the waits doubling from BUCKET_POLL_S up to this (the source stays in the
    bucket; the job is never failed for it)."""
    bucket_window_s: float = Field(1800.0, gt=0)
    """A poll lists the job folders whose ids were made in the last BUCKET_WINDOW_S."""
    bucket_full_sweep_s: float = Field(3600.0, ge=0)
    """Every BUCKET_FULL_SWEEP_S the whole of jobs/ is listed (0: only at start-up)."""
    bucket_sweep_concurrency: int = Field(8, ge=1, le=64)
    bucket_sweep_reads_per_s: float = Field(50.0, ge=0)
    """The pace of a full sweep's manifest reads (0: as fast as the concurrency allows)."""
    job_concurrency: int = Field(1, ge=1, le=32)
    queue_max: int = Field(100, ge=1)
    lease_ttl_s: float = Field(30.0, gt=0)
    lease_renew_s: float = Field(10.0, gt=0)
    shutdown_grace_s: float = Field(30.0, ge=0)
    retention_interval_s: float = Field(3600.0, gt=0)
    staging_stale_hours: float = Field(24.0, gt=0)

    # --- HTTP API ---------------------------------------------------------------------------
    http_enabled: bool = True
    http_host: str = "127.0.0.1"
    http_port: int = Field(8000, ge=0, le=65535)
    max_upload_bytes: int = Field(2 * 1024**3, ge=1)
    api_token: SecretStr | None = None
    public_base_url: str | None = None
    """Base URL of our own API for signed local-store links; None: the address the client
    used (the request's Host), so links work under whatever name reached the API."""
    cors_origins: str = ""
    """Comma-separated origins allowed by CORS (``*`` for any); empty: CORS off."""
    url_signing_secret: SecretStr | None = None
    """HMAC secret of the local store's signed links (default: a random secret kept in
    TEMP_MEDIA_DIR/.url-signing-key)."""

    # --- webhooks ---------------------------------------------------------------------------
    webhook_urls: str = ""
    """Comma-separated http(s) endpoints that get job events; empty: no webhooks."""
    webhook_secret: SecretStr | None = None
    """``whsec_<base64>``: the Standard Webhooks signing secret (required with URLs)."""
    webhook_timeout_s: float = Field(10.0, gt=0, le=300)
    webhook_retry_base_s: float = Field(5.0, gt=0, le=3600)
    webhook_max_age_h: float = Field(24.0, gt=0, le=24 * 30)

    # --- logging ----------------------------------------------------------------------------
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @model_validator(mode="after")
    def _window_covers_polls(self) -> Settings:
        if self.bucket_window_s < 2 * self.bucket_poll_s:
            raise ValueError(
                "BUCKET_WINDOW_S must be at least twice BUCKET_POLL_S, so that every new "
                "upload falls into some poll's window"
            )
        return self

    @field_validator("catalog_path", mode="before")
    @classmethod
    def _blank_path(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("model_backend", mode="before")
    @classmethod
    def _backend(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("model_device")
    @classmethod
    def _device(cls, value: str) -> str:
        value = value.strip().lower()
        if value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()):
            return value
        raise ValueError("must be auto, cpu, cuda or cuda:N")

    @field_validator("webhook_urls")
    @classmethod
    def _webhook_urls(cls, value: str) -> str:
        urls = [u.strip() for u in value.split(",") if u.strip()]
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    f"every endpoint must be an http:// or https:// URL with a host; "
                    f"{url[:60]!r} is not"
                )
        return ",".join(urls)

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _webhook_secret(cls, value: object) -> object:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or not str(raw).strip():
            return None
        text = str(raw).strip()
        low, high = WEBHOOK_SECRET_BYTES
        problem = f"must be {WEBHOOK_SECRET_PREFIX}<base64 of {low} to {high} random bytes>"
        if not text.startswith(WEBHOOK_SECRET_PREFIX):
            raise ValueError(problem)
        try:
            key = base64.b64decode(text[len(WEBHOOK_SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(problem + " (not valid base64)") from None
        if not low <= len(key) <= high:
            raise ValueError(problem + f" (it decodes to {len(key)} bytes)")
        return SecretStr(text)

    @model_validator(mode="after")
    def _webhook_secret_needed(self) -> Settings:
        if self.webhook_urls and self.webhook_secret is None:
            raise ValueError("WEBHOOK_SECRET is required when WEBHOOK_URLS is set")
        return self

    @field_validator("detect_model", "segment_model")
    @classmethod
    def _model(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a model or a path to weights")
        return value.strip()

    @field_validator(
        "r2_account_id",
        "r2_bucket",
        "r2_access_key_id",
        "r2_endpoint_url",
        "public_base_url",
    )
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return value.strip()

    @field_validator("r2_secret_access_key", "api_token", "url_signing_secret", mode="before")
    @classmethod
    def _blank_secret_is_none(cls, value: object) -> object:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(raw, str):
            return value  # not text: pydantic's own error, which never shows a secret
        return raw.strip() or None

    # --- derived ----------------------------------------------------------------------------
    def missing_r2_settings(self) -> list[str]:
        """The required R2 settings that are not given (empty when R2 is fully configured)."""
        missing = [name for name in REQUIRED_R2_SETTINGS if getattr(self, name.lower()) is None]
        if self.r2_endpoint_url is None and self.r2_account_id is None:
            missing.insert(0, "R2_ACCOUNT_ID")
        return missing

    def r2_requested(self) -> bool:
        """Whether any R2 setting is given: then all the required ones must be."""
        return any(
            getattr(self, name) is not None
            for name in (
                "r2_account_id",
                "r2_bucket",
                "r2_access_key_id",
                "r2_secret_access_key",
                "r2_endpoint_url",
            )
        )

    def webhook_endpoints(self) -> tuple[str, ...]:
        """The webhook endpoints, in the order given (empty: webhooks off)."""
        return tuple(u for u in self.webhook_urls.split(",") if u)

    def r2_endpoint(self) -> str | None:
        if self.r2_endpoint_url:
            return self.r2_endpoint_url
        if self.r2_account_id:
            return f"https://{self.r2_account_id}.r2.cloudflarestorage.com"
        return None


def declared_result_effects() -> dict[str, bool | str]:
    """Every setting declared to change results (True, or BY_WEIGHTS) or not (False)."""
    out: dict[str, bool | str] = {}
    for name, info in Settings.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and CHANGES_RESULTS in extra:
            value = extra[CHANGES_RESULTS]
            assert isinstance(value, bool | str)
            out[name] = value
    return out


RESULT_SETTINGS: tuple[str, ...] = tuple(
    name for name, effect in declared_result_effects().items() if effect is True
)
"""The settings whose values change results, in declaration order."""


def result_settings(settings: Settings) -> dict[str, Any]:
    """The values of the settings that change results (``RESULT_SETTINGS``): what the
    content key hashes and the provenance records."""
    return {name: getattr(settings, name) for name in RESULT_SETTINGS}


def read_credentials(source: Mapping[str, str], given: Mapping[str, object]) -> dict[str, str]:
    """The secret settings found in ``$CREDENTIALS_DIRECTORY`` (systemd's ``LoadCredential=``),
    each in the file named after the setting (``API_TOKEN``), its trailing newline dropped.

    The environment wins: a secret given there (not blank) is not read from the folder, so
    a drop-in's ``Environment=`` can still replace a credential. Only secret settings are
    read; other files of the folder are not ours. A file the folder lists but that cannot
    be read (a dangling link, a folder, no permission, not UTF-8) or that is empty is a
    ConfigError naming the setting: the unit named it, so it was meant to hold a value.
    """
    folder_text = source.get(CREDENTIALS_DIRECTORY, "")
    if not folder_text:
        return {}
    folder = Path(folder_text)
    if not folder.is_dir():
        raise ConfigError(
            f"invalid setting {CREDENTIALS_DIRECTORY}={folder_text!r}: not a readable folder",
            settings=(CREDENTIALS_DIRECTORY,),
        )
    found: dict[str, str] = {}
    for name in sorted(SECRET_SETTINGS):
        in_env = given.get(name)
        if isinstance(in_env, str) and in_env.strip():
            continue
        path = folder / name.upper()
        if not (path.exists() or path.is_symlink()):
            continue
        found[name] = _read_credential(path, name.upper())
    return found


def _read_credential(path: Path, setting: str) -> str:
    """One credential's text; ConfigError naming ``setting`` when it cannot be had."""
    where = f"${CREDENTIALS_DIRECTORY}/{setting}"
    try:
        text = path.read_bytes().decode("utf-8").rstrip("\r\n")
    except FileNotFoundError:
        problem = "missing (its source file is gone)"
    except UnicodeDecodeError:
        problem = "unreadable (not UTF-8 text)"
    except OSError as exc:
        problem = f"unreadable ({exc.strerror or type(exc).__name__})"
    else:
        if text.strip():
            return text
        problem = "empty"
    raise ConfigError(f"credential {setting} ({where}) is {problem}", settings=(setting,))


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read the settings from ``env`` (default: the process environment), the secrets not
    given there from ``$CREDENTIALS_DIRECTORY`` when ``env`` names one (``read_credentials``),
    plus overrides.

    Raises ConfigError with one line naming the first invalid setting.
    """
    source = dict(os.environ if env is None else env)
    values: dict[str, object] = {}
    for name in Settings.model_fields:
        for key in (name.upper(), name):
            if key in source:
                values[name] = source[key]
                break
    values.update(read_credentials(source, given=values))
    values.update(overrides)
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        message = str(err["msg"]).removeprefix("Value error, ")
        if not err["loc"]:
            raise ConfigError(f"invalid settings: {message}") from None
        field = str(err["loc"][0])
        given = "<hidden>" if field in SECRET_SETTINGS else repr(values.get(field))
        raise ConfigError(f"invalid setting {field.upper()}={given}: {message}") from None
