"""Apply the retention rules once (orders/retention.py), or, with --dry-run, say what that would remove.

The worker does the same every RETENTION_PURGE_INTERVAL_SECONDS; this is for previewing a
change of the settings and for catching up by hand. Prints counts only, never patient data.
"""

from django.conf import settings
from django.core.management.base import BaseCommand

from orders.retention import purge, purge_preview


def labels():
    return {
        "notes": f"PDFs (notes filed, abandoned or of closed orders, after {settings.RETENTION_PDF_DAYS} days)",
        "messages": f"raw message bodies (after {settings.RETENTION_PAYLOAD_DAYS} days)",
        "redeliveries": "raw redelivery bodies (with their messages)",
        "orders": f"orders' patient details (after {settings.RETENTION_PATIENT_DAYS} days)",
        "audit_events": f"audit events (after {settings.AUDIT_RETENTION_DAYS} days)",
    }


class Command(BaseCommand):
    help = "Remove what the retention settings say is due (never what is under a legal hold); --dry-run only counts."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count what would be removed; change nothing.")

    def handle(self, *args, dry_run, **options):
        if dry_run:
            counts = purge_preview()
            self.stdout.write("Dry run: nothing was changed. The next purge would remove:")
        else:
            counts = purge()
            self.stdout.write("Removed:")
        for kind, label in labels().items():
            if kind in counts:
                self.stdout.write(f"  {counts[kind]:>8}  {label}")
