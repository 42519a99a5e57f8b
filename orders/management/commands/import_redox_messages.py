"""Feed stored Redox messages through the same ingest path as the webhook.

    manage.py import_redox_messages --partner NAME [--arrival now|event-time]
        [--close-before YYYY-MM-DD] PATH [PATH ...]

A `.json` file is one record; a `.jsonl` / `.ndjson` file has one record per line; a
folder is searched (recursively, in name order) for both. A record is either

- a Redox message, exactly as Redox sent it; or
- an envelope that also says when the message arrived:
  `{"received_at": "2024-03-01T14:05:09Z", "body": <the message>}`, where `received_at` is
  ISO 8601 with a UTC offset, and `body` is the message as a string (stored byte for byte,
  UTF-8) or as a JSON object (stored as compact JSON).

The arrival time becomes the order's "first received" time, which the order list sorts
by and the usage figures count from. It is the envelope's `received_at`; without one,
`--arrival event-time` takes the message's `Meta.EventDateTime`, and `--arrival now`
(the default) the time of the import.

`--close-before DATE` then moves the partner's orders still awaiting a note that were
first received before that date (midnight in TIME_ZONE) to "Closed before HCOINT": the
old system sent their notes, so they are not Dispatch's backlog.

Every record is checked before anything is imported, so a malformed envelope stops the
import with its file and line and changes nothing. Importing the same files again is
harmless: each message is recognised by its dedupe key and only counted.
"""

import argparse
import json
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from orders.history import orders_close_before
from orders.ingest import message_ingest
from orders.models import InboundMessage, Partner
from redox import inbound, values

ONE_MESSAGE = (".json",)
ONE_PER_LINE = (".jsonl", ".ndjson")
# Stored with each imported message so staff can tell it did not come over the webhook.
IMPORT_HEADERS = {"user-agent": "hcoint import_redox_messages"}
ENVELOPE_KEYS = {"received_at", "body"}
ARRIVAL_NOW = "now"
ARRIVAL_EVENT_TIME = "event-time"
# Messages only: never a value from the file, which may be patient data.
BAD_KEYS = "an envelope has only the keys received_at and body."
BAD_BODY = "an envelope's body must be the Redox message, as a JSON object or a string."
BAD_TIME = "received_at must be an ISO 8601 time with a UTC offset, such as 2024-03-01T14:05:09Z."
BAD_TIME_RANGE = (
    f"received_at must be from {values.EARLIEST_TIME.year} to {values.LATEST_TIME.year - 1},"
    " with a UTC offset under 16 hours."
)


@dataclass(frozen=True)
class Record:
    body: bytes
    received_at: datetime | None  # from the envelope; None for a bare message


def _files(path):
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in ONE_MESSAGE + ONE_PER_LINE)
    if not path.is_file():
        raise CommandError(f"No such file or folder: {path}")
    if path.suffix.lower() not in ONE_MESSAGE + ONE_PER_LINE:
        raise CommandError(f"{path}: expected a .json, .jsonl or .ndjson file.")
    return [path]


def _records(path):
    if path.suffix.lower() in ONE_MESSAGE:
        yield _record(path.read_bytes(), str(path))
        return
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            line = line.strip()
            if line:
                yield _record(line, f"{path}:{number}")


def _record(raw, where):
    """One record as (bytes to ingest, envelope time). Anything but an envelope is a bare message."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        # Not JSON: stored as it is, and marked failed like any such delivery.
        return Record(body=raw, received_at=None)
    if not isinstance(data, dict) or "Meta" in data or "body" not in data:
        return Record(body=raw, received_at=None)
    if set(data) - ENVELOPE_KEYS:
        raise CommandError(f"{where}: {BAD_KEYS}")
    body = data["body"]
    if isinstance(body, str):
        body = body.encode()
    elif isinstance(body, dict):
        body = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    else:
        raise CommandError(f"{where}: {BAD_BODY}")
    received_at = data.get("received_at")
    if received_at is None:
        return Record(body=body, received_at=None)
    try:
        received_at = datetime.fromisoformat(received_at)
    except (TypeError, ValueError):
        raise CommandError(f"{where}: {BAD_TIME}") from None
    if received_at.tzinfo is None:
        # The old system's local time or UTC? Guessing would shift every order.
        raise CommandError(f"{where}: {BAD_TIME}")
    # Within the range every stored time keeps (redox/values.py), or the pages could not show it.
    received_at = values.parse_datetime(data["received_at"])
    if received_at is None:
        raise CommandError(f"{where}: {BAD_TIME_RANGE}")
    return Record(body=body, received_at=received_at)


def _event_time(body):
    return inbound.read(body).meta.event_at


def _day(value):
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a date as YYYY-MM-DD.") from None


class Command(BaseCommand):
    help = (
        "Import Redox messages from .json / .jsonl / .ndjson files or folders, idempotently. "
        'A record is a Redox message, or an envelope {"received_at": "<ISO 8601 with offset>", '
        '"body": <the message, as an object or a string>} that keeps its arrival time.'
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path, help="Files or folders to import.")
        parser.add_argument("--partner", required=True, help="Name of the partner the messages came from.")
        parser.add_argument(
            "--arrival",
            choices=[ARRIVAL_NOW, ARRIVAL_EVENT_TIME],
            default=ARRIVAL_NOW,
            help="Arrival time of a record without an envelope time: the time of the import (now, the default) "
            "or the message's Meta.EventDateTime (event-time).",
        )
        parser.add_argument(
            "--close-before",
            type=_day,
            metavar="YYYY-MM-DD",
            help="After importing, close the partner's orders still awaiting a note that were first received "
            "before this date (midnight, TIME_ZONE): the old system sent their notes.",
        )

    def handle(self, *args, paths, partner, arrival, close_before, **options):
        found = Partner.objects.filter(name=partner).first()
        if found is None:
            raise CommandError(f"No partner named {partner!r}; create it with configure_partner first.")
        if close_before is not None and close_before > timezone.localdate():
            raise CommandError("--close-before cannot be later than today: it would close orders HCOINT must answer.")
        files = [file for path in paths for file in _files(path)]
        for file in files:
            # Check every record first, so a bad envelope stops the import before it starts.
            for _ in _records(file):
                pass

        counts = {"new": 0, "duplicate": 0, "failed": 0, "ignored": 0}
        arrived_now = 0
        for file in files:
            for record in _records(file):
                received_at = record.received_at
                if received_at is None and arrival == ARRIVAL_EVENT_TIME:
                    received_at = _event_time(record.body)
                arrived_now += received_at is None
                result = message_ingest(
                    partner=found, body=record.body, headers=IMPORT_HEADERS, received_at=received_at
                )
                if result.duplicate:
                    counts["duplicate"] += 1
                elif result.message.status == InboundMessage.Status.FAILED:
                    counts["failed"] += 1
                elif result.message.status == InboundMessage.Status.IGNORED:
                    counts["ignored"] += 1
                else:
                    counts["new"] += 1
        self.stdout.write(
            f"{len(files)} file(s): {counts['new']} new, {counts['duplicate']} duplicate, "
            f"{counts['failed']} failed, {counts['ignored']} ignored (not Order)."
        )
        if arrived_now:
            self.stdout.write(
                f"{arrived_now} record(s) had no arrival time (no envelope time"
                f"{' and no Meta.EventDateTime' if arrival == ARRIVAL_EVENT_TIME else ''}), "
                "so they count as received now."
            )
        if counts["failed"]:
            self.stdout.write("Failed messages are kept; fix the cause, then run reprocess_messages --failed.")
        if close_before is not None:
            before = timezone.make_aware(datetime.combine(close_before, time.min))
            closed = orders_close_before(partner=found, before=before)
            self.stdout.write(
                f"Closed {closed} order(s) awaiting a note and first received before {before.isoformat()} "
                "(state: Closed before HCOINT)."
            )
