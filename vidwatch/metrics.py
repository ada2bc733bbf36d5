"""Prometheus metrics of the process, served at /metrics by the HTTP API."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

JOBS = Counter(
    "vidwatch_jobs_total",
    "Jobs that ended, by final state and origin",
    ["state", "origin"],
    registry=REGISTRY,
)
JOBS_RUNNING = Gauge("vidwatch_jobs_running", "Jobs being processed now", registry=REGISTRY)
QUEUE_DEPTH = Gauge("vidwatch_queue_depth", "Jobs waiting in the runner's queue", registry=REGISTRY)
STAGE_SECONDS = Histogram(
    "vidwatch_stage_seconds",
    "Time spent per job stage",
    ["stage"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
    registry=REGISTRY,
)
FRAMES_DECODED = Counter("vidwatch_frames_decoded_total", "Frames decoded", registry=REGISTRY)
FRAMES_ANALYZED = Counter(
    "vidwatch_frames_analyzed_total", "Sampled frames sent to the models", registry=REGISTRY
)
HTTP_REQUESTS = Counter(
    "vidwatch_http_requests_total",
    "HTTP requests by route and status",
    ["route", "status"],
    registry=REGISTRY,
)
HTTP_REQUEST_SECONDS = Histogram(
    "vidwatch_http_request_seconds",
    "HTTP request latency by route",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120),
    registry=REGISTRY,
)
API_UPLOADS = Counter(
    "vidwatch_api_uploads_total",
    "Uploads to POST /analyze-video by outcome (accepted or the error code)",
    ["outcome"],
    registry=REGISTRY,
)
API_UPLOAD_BYTES = Counter(
    "vidwatch_api_upload_bytes_total", "Video bytes of accepted uploads", registry=REGISTRY
)
WEBHOOK_EVENTS = Counter(
    "vidwatch_webhook_events_total",
    "Job events recorded in the webhook outbox, by type",
    ["type"],
    registry=REGISTRY,
)
WEBHOOK_ATTEMPTS = Counter(
    "vidwatch_webhook_attempts_total",
    "Webhook delivery attempts by result (ok, gone, failed)",
    ["result"],
    registry=REGISTRY,
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "vidwatch_webhook_attempt_seconds",
    "Time of one webhook delivery attempt",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "vidwatch_webhook_deliveries_total",
    "Webhook deliveries that ended, by outcome (delivered, gone, expired)",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOK_PENDING = Gauge(
    "vidwatch_webhook_pending",
    "Webhook deliveries pending in this process's schedule",
    registry=REGISTRY,
)
JOBS_DUPLICATE = Counter(
    "vidwatch_jobs_duplicate_total",
    "Jobs completed as duplicates of an earlier job of the same content (not analysed)",
    registry=REGISTRY,
)
INBOX_STAGE_FAILURES = Counter(
    "vidwatch_inbox_stage_failures_total",
    "Failed tries to stage an inbox file (disk full, staging not writable)",
    registry=REGISTRY,
)
STAGING_FULL_WAITS = Counter(
    "vidwatch_staging_full_waits_total",
    "Downloads of a job's source from the store into TEMP_MEDIA_DIR that found the disk "
    "full (the job waits, then tries again)",
    registry=REGISTRY,
)
STAGING_FULL_WAITING = Gauge(
    "vidwatch_staging_full_waiting",
    "Jobs waiting for room in TEMP_MEDIA_DIR to download their source",
    registry=REGISTRY,
)
STORE_RETRIES = Counter(
    "vidwatch_store_retries_total",
    "Store calls retried after a transient failure (outage, timeout, 5xx), by operation",
    ["op"],
    registry=REGISTRY,
)
LEASES_LOST = Counter(
    "vidwatch_leases_lost_total",
    "Job leases this daemon lost (renewals failed until expiry, or taken over)",
    registry=REGISTRY,
)
ATTEMPTS_ABANDONED = Counter(
    "vidwatch_job_attempts_abandoned_total",
    "Job attempts found cut off (daemon died or lost the lease) by the attempt taking over",
    registry=REGISTRY,
)
BUCKET_POLL_SECONDS = Histogram(
    "vidwatch_bucket_poll_seconds",
    "Time of one bucket poll (pending markers, the recent window, staging)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
BUCKET_POLL_CALLS = Gauge(
    "vidwatch_bucket_poll_store_calls",
    "Store requests of the last bucket poll, by kind (list, get, head, put, delete)",
    ["op"],
    registry=REGISTRY,
)
BUCKET_STORE_CALLS = Counter(
    "vidwatch_bucket_store_calls_total",
    "Store requests of the bucket scanner, by scan (poll or sweep) and kind",
    ["scan", "op"],
    registry=REGISTRY,
)
BUCKET_PENDING_MARKERS = Gauge(
    "vidwatch_bucket_pending_markers",
    "Pending markers (queued or running jobs) seen by the last poll",
    registry=REGISTRY,
)
BUCKET_SWEEP_SECONDS = Histogram(
    "vidwatch_bucket_sweep_seconds",
    "Time of one full sweep of jobs/",
    buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 7200),
    registry=REGISTRY,
)
BUCKET_SWEEP_FOLDERS = Gauge(
    "vidwatch_bucket_sweep_folders",
    "Job folders listed by the last full sweep, by what the sweep did with them",
    ["outcome"],
    registry=REGISTRY,
)
