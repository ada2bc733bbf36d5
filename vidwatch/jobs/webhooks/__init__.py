"""Job events as Standard Webhooks (standardwebhooks.com, spec 1.0), delivered at least once.

An event (``job.queued``, ``job.started``, ``job.completed``, ``job.failed``) becomes one
outbox record per endpoint, ``outbox/<event ulid>.<endpoint id>.json``, written to the store
*before* the first attempt. The sender's threads deliver what is due: a record is claimed
with a conditional write (If-Match on its ETag, so two daemons on one bucket never attempt
it at once), POSTed with ``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature``
headers, then deleted (2xx delivered, 410 gone, or given up after ``WEBHOOK_MAX_AGE_H``) as
soon as the job's status.json records how it ended, or written back with its next attempt
time. A restart, a crash (the claim runs out) or another daemon picks pending records up by
listing ``outbox/``, which holds only pending records (and, for about a second, ended ones
waiting for that status.json write: a crash then costs a repeated delivery, never a
delivered event missing from status.json).

Each retry keeps the event's ``webhook-id`` and is signed afresh with its own timestamp
(receivers refuse timestamps over 5 minutes old). The decisions (``retry_delay_s``,
``decide``) are pure functions of the record, the outcome and ``now``.

Deliveries never block a job: ``emit`` writes the records and returns; a failed write there
(a store error or any other) is logged and retried by the sender's thread, never dropped.
The delivery state of each event shows in the job's status.json under ``notifications``
(merged in with If-Match) and in /metrics. The secret is never logged; endpoints are
logged without user info and query.

The package: what is sent (``events``: body, signature, endpoint names), the outbox record
and the decision after each attempt (``outbox``), the delivery state in status.json
(``notifications``), the threads that deliver (``sender``).
"""

from vidwatch.jobs.webhooks.events import EVENT_TYPES, endpoint_label, event_body, event_data, sign
from vidwatch.jobs.webhooks.notifications import (
    merge_notifications,
    write_keeping_notifications,
)
from vidwatch.jobs.webhooks.outbox import (
    MAX_RETRY_DELAY_S,
    OUTBOX_PREFIX,
    Decision,
    Delivery,
    Outcome,
    decide,
    retry_delay_s,
)
from vidwatch.jobs.webhooks.sender import WebhookSender

__all__ = [
    "EVENT_TYPES",
    "MAX_RETRY_DELAY_S",
    "OUTBOX_PREFIX",
    "Decision",
    "Delivery",
    "Outcome",
    "WebhookSender",
    "decide",
    "endpoint_label",
    "event_body",
    "event_data",
    "merge_notifications",
    "retry_delay_s",
    "sign",
    "write_keeping_notifications",
]
