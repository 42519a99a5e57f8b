"""Report the usage figures as log events and DogStatsD gauges (see orders.usage.usage_report).

Run it at least hourly in production: the dashboard's usage panels and the monitor for
orders awaiting a note read what it emits.
"""

from django.core.management.base import BaseCommand

from orders.usage import usage_report
from orders.usage_weeks import MAX_WEEKS


class Command(BaseCommand):
    help = "Emit weekly usage figures (usage.weekly) and the note backlog (usage.backlog) as log events and gauges."

    def add_arguments(self, parser):
        parser.add_argument(
            "--weeks", type=int, default=2, help="How many recent ISO weeks to report (default 2: this and last)."
        )
        parser.add_argument("--include-test", action="store_true", help="Count test orders too.")

    def handle(self, *args, weeks, include_test, **options):
        weeks = max(1, min(weeks, MAX_WEEKS))
        usage = usage_report(weeks=weeks, include_test=include_test)
        active = {row.partner_id for row in usage.rows if row.partner_id is not None}
        self.stdout.write(
            f"Reported {weeks} week(s) for {len(active)} active partner(s) "
            f"and the note backlog of {len(usage.backlog)} partner(s)."
        )
