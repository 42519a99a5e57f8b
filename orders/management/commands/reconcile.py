"""Every order received in a date range with its latest delivery and what Redox's log says of it.

    manage.py reconcile --since 2026-10-01 --until 2026-10-31 [--refresh] [--csv]

For audits and for the move to confirmed deliveries: `--refresh` asks Redox's Platform API
about every delivery still "Accepted by Redox" in the range at once (whatever its schedule),
within REDOX_CONFIRM_MAX_PER_MINUTE, and records the answers as the confirmer would.

The output has no patient name, identifier or date, but it does hold each order's EHR order
id, which hcoint/phi.py treats as sensitive (it can lead back to a patient in the partner's
EHR): share it only with the partner concerned or with Redox, never more widely.
"""

import csv
import time
from datetime import datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from orders.confirm import confirm_one, confirmer_configured, take_request_budget
from orders.models import Delivery, Order
from orders.reconcile import latest_deliveries

COLUMNS = (
    "order_id",
    "ehr_order_id",
    "partner_id",
    "received_at",
    "order_state",
    "delivery_id",
    "delivery_status",
    "sent_at",
    "redox_log_id",
    "confirmed_at",
    "redox_status",
)


def _date(value):
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD).") from None


class Command(BaseCommand):
    help = "List orders in a date range with their delivery and Redox status; --refresh asks Redox again."

    def add_arguments(self, parser):
        parser.add_argument("--since", required=True, help="First day (YYYY-MM-DD) the orders were received.")
        parser.add_argument("--until", required=True, help="Last day (YYYY-MM-DD), inclusive.")
        parser.add_argument(
            "--refresh", action="store_true", help="Ask Redox now about every delivery still accepted, unconfirmed."
        )
        parser.add_argument("--csv", action="store_true", dest="as_csv", help="CSV on stdout instead of a table.")

    def handle(self, *args, since, until, refresh, as_csv, **options):
        start, end = _date(since), _date(until)
        if end < start:
            raise CommandError("--until is before --since.")
        zone = timezone.get_current_timezone()
        orders = Order.objects.filter(
            first_received_at__gte=datetime.combine(start, datetime.min.time(), zone),
            first_received_at__lt=datetime.combine(end + timedelta(days=1), datetime.min.time(), zone),
        ).order_by("first_received_at", "id")
        latest = latest_deliveries(orders.values("pk"))
        redox_status = {}
        if refresh:
            if not confirmer_configured():
                raise CommandError("--refresh needs the REDOX_PLATFORM_* settings and REDOX_ORGANIZATION_ID.")
            redox_status = self._refresh([d for d in latest.values() if d.status == Delivery.Status.SENT])
        rows = [self._row(order, latest.get(order.pk), redox_status) for order in orders.iterator()]
        if as_csv:
            self._csv(rows)
        else:
            self._table(rows)

    def _refresh(self, deliveries):
        answers = {}
        for delivery in deliveries:
            if not delivery.redox_log_id:
                continue
            while not take_request_budget(timezone.now(), 1):
                time.sleep(5)  # this minute's requests are spent; the worker's confirmer shares them
            answers[delivery.pk] = confirm_one(delivery) or "error"
            delivery.refresh_from_db()
        self.stderr.write(f"Asked Redox about {len(answers)} delivery(ies).")
        return answers

    def _row(self, order, delivery, redox_status):
        def when(value):
            return value.isoformat() if value else ""

        return {
            "order_id": order.pk,
            "ehr_order_id": order.ehr_order_id,
            "partner_id": order.partner_id,
            "received_at": when(order.first_received_at),
            "order_state": order.state,
            "delivery_id": delivery.pk if delivery else "",
            "delivery_status": delivery.status if delivery else "",
            "sent_at": when(delivery.sent_at) if delivery else "",
            "redox_log_id": delivery.redox_log_id if delivery else "",
            "confirmed_at": when(delivery.confirmed_at) if delivery else "",
            "redox_status": redox_status.get(delivery.pk, "") if delivery else "",
        }

    def _csv(self, rows):
        writer = csv.DictWriter(self.stdout, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    def _table(self, rows):
        for row in rows:
            self.stdout.write("  ".join(str(row[column]) or "-" for column in COLUMNS))
        not_done = sum(1 for row in rows if row["order_state"] not in Order.CLOSED_STATES)
        self.stdout.write(f"{len(rows)} order(s); {not_done} not filed (see the reconciliation page).")
