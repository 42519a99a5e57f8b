"""`manage.py deliver`: the delivery worker (the Procfile's `worker:` line). The loop is orders/worker.py."""

import signal

from django.core.management.base import BaseCommand

from orders.worker import Worker


class Command(BaseCommand):
    help = "Send due notes to Redox, retry failed sends, and log the usage report hourly. SIGTERM stops it cleanly."

    def add_arguments(self, parser):
        parser.add_argument(
            "--until-idle",
            action="store_true",
            help="Send everything that is due, then exit (no usage report). For tests and one-off catch-ups.",
        )
        parser.add_argument("--max-deliveries", type=int, help="Exit after this many attempts.")

    def handle(self, *args, **options):
        worker = Worker()
        # A deploy sends SIGTERM; Ctrl-C sends SIGINT. Either lets the current send finish.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, worker.stop)
        worker.run(until_idle=options["until_idle"], max_deliveries=options["max_deliveries"])
