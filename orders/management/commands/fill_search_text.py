"""Fill Order.search_text for orders saved without it (see orders/search.py).

Migration 0013 fills every existing order; run this once more after a release has fully
rolled out, for the orders the previous release stored while the migration ran.
"""

from django.core.management.base import BaseCommand

from orders.models import Order
from orders.search import fill_search_text


class Command(BaseCommand):
    help = "Fill the search column of orders stored before it existed (safe to run again)."

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=2000, help="Orders per transaction (default 2000).")

    def handle(self, *args, batch, **options):
        filled = fill_search_text(Order, batch=batch)
        self.stdout.write(f"Filled the search text of {filled} orders.")
