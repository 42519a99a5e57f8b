"""Feed stored Redox messages through the same ingest path as the webhook.

    manage.py import_redox_messages --partner NAME PATH [PATH ...]

A `.json` file is one message; a `.jsonl` / `.ndjson` file has one message per line;
a folder is searched (recursively, in name order) for both. Importing the same files
again is harmless: each message is recognised by its dedupe key and only counted.
This is how history from the old system is brought over.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from orders.ingest import message_ingest
from orders.models import InboundMessage, Partner

ONE_MESSAGE = (".json",)
ONE_PER_LINE = (".jsonl", ".ndjson")
# Stored with each imported message so staff can tell it did not come over the webhook.
IMPORT_HEADERS = {"user-agent": "hcoint import_redox_messages"}


def _files(path):
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in ONE_MESSAGE + ONE_PER_LINE)
    if not path.is_file():
        raise CommandError(f"No such file or folder: {path}")
    if path.suffix.lower() not in ONE_MESSAGE + ONE_PER_LINE:
        raise CommandError(f"{path}: expected a .json, .jsonl or .ndjson file.")
    return [path]


def _bodies(path):
    if path.suffix.lower() in ONE_MESSAGE:
        yield path.read_bytes()
        return
    with path.open("rb") as lines:
        for line in lines:
            line = line.strip()
            if line:
                yield line


class Command(BaseCommand):
    help = "Import Redox messages from .json / .jsonl / .ndjson files or folders, idempotently."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path, help="Files or folders to import.")
        parser.add_argument("--partner", required=True, help="Name of the partner the messages came from.")

    def handle(self, *args, paths, partner, **options):
        found = Partner.objects.filter(name=partner).first()
        if found is None:
            raise CommandError(f"No partner named {partner!r}; create it with configure_partner first.")
        files = [file for path in paths for file in _files(path)]
        counts = {"new": 0, "duplicate": 0, "failed": 0, "ignored": 0}
        for file in files:
            for body in _bodies(file):
                result = message_ingest(partner=found, body=body, headers=IMPORT_HEADERS)
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
        if counts["failed"]:
            self.stdout.write("Failed messages are kept; fix the cause, then run reprocess_messages --failed.")
