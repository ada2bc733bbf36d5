"""The store's errors for what botocore and s3transfer raise: which failures are worth
retrying, which are ours to fix (credentials, bucket, endpoint, clock), and the setting
each one names."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from s3transfer.exceptions import RetriesExceededError

from vidwatch.r2.store import (
    ObjectNotFound,
    PermanentStoreError,
    PreconditionFailed,
    StoreError,
    TransientStoreError,
)

CREDENTIALS_SETTING = "R2_ACCESS_KEY_ID / R2_SECRET_ACCESS_KEY"
BUCKET_SETTING = "R2_BUCKET"

_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
        "ConditionalRequestConflict",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
_CREDENTIAL_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "TokenRefreshRequired",
        "AllAccessDisabled",
        "AccountProblem",
        "Forbidden",
        "Unauthorized",
        "InvalidSecurity",
        "403",
        "401",
    }
)
_BUCKET_CODES = frozenset({"NoSuchBucket", "InvalidBucketName"})
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


def classify_error(
    exc: BaseException,
    *,
    op: str,
    target: str,
    endpoint: str,
    endpoint_setting: str = "R2_ENDPOINT_URL",
) -> StoreError | None:
    """The store error for a botocore/s3transfer error, or None for anything else.

    Transient: refused or dropped connections, timeouts, 5xx, 429, throttling, and 409
    ConditionalRequestConflict (S3's answer to racing conditional writes). Permanent: 403
    and bad credentials (setting R2_ACCESS_KEY_ID / R2_SECRET_ACCESS_KEY), no such bucket
    (R2_BUCKET), other 4xx. 412: PreconditionFailed. 404 on a key: ObjectNotFound.
    """
    where = f"{op} {target} at {endpoint}"
    if isinstance(exc, RetriesExceededError):  # s3transfer's download retries, exhausted
        inner = exc.last_exception
        found = None
        if inner is not None and inner is not exc:
            found = classify_error(
                inner, op=op, target=target, endpoint=endpoint, endpoint_setting=endpoint_setting
            )
        return found or TransientStoreError(f"{where}: {exc}", setting=endpoint_setting)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return PermanentStoreError(
            f"{where}: no credentials; check {CREDENTIALS_SETTING}", setting=CREDENTIALS_SETTING
        )
    if isinstance(exc, ConnectionError | HTTPClientError | IncompleteReadError):
        return TransientStoreError(
            f"{where}: {type(exc).__name__}: {exc}; check {endpoint_setting} and the network",
            setting=endpoint_setting,
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {}) or {}
        code = str(error.get("Code", "") or "")
        message = str(error.get("Message", "") or "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        detail = f"{where}: {code or 'error'} (HTTP {status}){': ' + message if message else ''}"
        if status == 412 or code == "PreconditionFailed":
            return PreconditionFailed(detail)
        if code in _TRANSIENT_CODES or status >= 500 or status in (408, 429):
            return TransientStoreError(detail)  # the server answered: no setting to blame
        if code in _BUCKET_CODES:
            return PermanentStoreError(f"{detail}; check {BUCKET_SETTING}", setting=BUCKET_SETTING)
        if code == "RequestTimeTooSkewed":  # a 403, but not the credentials' fault
            return PermanentStoreError(f"{detail}; check this host's clock")
        if code in _CREDENTIAL_CODES or status in (401, 403):
            return PermanentStoreError(
                f"{detail}; check {CREDENTIALS_SETTING} (and that the token may use the bucket)",
                setting=CREDENTIALS_SETTING,
            )
        if code in _NOT_FOUND_CODES or status == 404:
            return ObjectNotFound(detail)
        if status in (301, 307) or code in ("PermanentRedirect", "AuthorizationHeaderMalformed"):
            return PermanentStoreError(
                f"{detail}; check {endpoint_setting} and R2_REGION", setting=endpoint_setting
            )
        return PermanentStoreError(detail)
    if isinstance(exc, BotoCoreError):
        return PermanentStoreError(f"{where}: {type(exc).__name__}: {exc}")
    return None
