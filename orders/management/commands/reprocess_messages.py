"""Apply stored messages again, after the cause of their failure has been fixed.

    manage.py reprocess_messages --failed [--partner NAME]
    manage.py reprocess_messages --received     # stored but never applied (interrupted)

Each message goes through the same code as a fresh delivery, under the same row lock,
so running this while the webhook is live is safe, and a message that is processed by
then is left alone.
"""

from django.core.management.base import BaseCommand, CommandError

from orders.ingest import message_process
from orders.models import InboundMessage, Partner


class Command(BaseCommand):
    help = "Re-run stored Redox messages that failed (or were never applied)."

    def add_arguments(self, parser):
        parser.add_argument("--failed", action="store_true", help="Messages whose processing failed.")
        parser.add_argument("--received", action="store_true", help="Messages stored but never applied.")
        parser.add_argument("--partner", help="Only this partner's messages.")

    def handle(self, *args, failed, received, partner, **options):
        statuses = [InboundMessage.Status.FAILED] * failed + [InboundMessage.Status.RECEIVED] * received
        if not statuses:
            raise CommandError("Say which messages to reprocess: --failed and/or --received.")
        messages = InboundMessage.objects.filter(status__in=statuses).defer("body").order_by("received_at", "id")
        if partner:
            found = Partner.objects.filter(name=partner).first()
            if found is None:
                raise CommandError(f"No partner named {partner!r}.")
            messages = messages.filter(partner=found)
        counts = {status: 0 for status in InboundMessage.Status.values}
        for message in messages.iterator():
            counts[message_process(message=message).status] += 1
        self.stdout.write(
            f"{sum(counts.values())} message(s): {counts['processed']} processed, "
            f"{counts['ignored']} ignored, {counts['failed']} still failed."
        )
