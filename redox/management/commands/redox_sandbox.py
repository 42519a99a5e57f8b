"""Serve the local fake Redox (redox/sandbox/) until interrupted."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from redox.sandbox.server import make_server
from redox.sandbox.state import FAIL_STATUSES, LOG_STATUSES, SandboxState


class Command(BaseCommand):
    help = "Serve a fake Redox on localhost: auth, /endpoint, /upload, and a page at / to make it fail."
    # No database and no models: the sandbox keeps what it receives in memory.
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8001, help="Port to listen on (default 8001).")
        parser.add_argument("--fail-next", type=int, default=0, metavar="N", help="Fail the first N calls.")
        parser.add_argument(
            "--fail-status", type=int, default=500, choices=FAIL_STATUSES, help="HTTP status for --fail-next."
        )
        parser.add_argument("--retry-after", type=int, default=2, help="Retry-After seconds sent with 429 and 503.")
        parser.add_argument("--reject", action="store_true", help="Reject every message with 400 until cleared.")
        parser.add_argument("--reject-text", default=None, help="The error text a rejection carries.")
        parser.add_argument(
            "--log-status",
            default="pending",
            choices=LOG_STATUSES,
            help="What the Platform API says of a new log until told otherwise on the page (default pending).",
        )

    def handle(
        self,
        *args: Any,
        host: str,
        port: int,
        fail_next: int,
        fail_status: int,
        retry_after: int,
        reject: bool,
        reject_text: str | None,
        log_status: str,
        **options: Any,
    ) -> None:
        state = SandboxState(log_status=log_status)
        if fail_next:
            state.fail_next(fail_next, status=fail_status, retry_after=retry_after)
        if reject:
            state.reject(None, reject_text)
        try:
            server = make_server(host, port, state)
        except OSError as exc:
            raise CommandError(f"Cannot listen on {host}:{port}: {exc.strerror}") from None
        url = f"http://{host}:{server.server_address[1]}"
        self.stdout.write(f"Redox sandbox on {url}/ (control page); point the app at it with")
        self.stdout.write(f"  REDOX_API_BASE_URL={url} REDOX_UPLOAD_URL={url}/upload")
        self.stdout.write("  and REDOX_API_KEY/REDOX_API_SECRET (or the JWT settings) set to anything well formed;")
        self.stdout.write(f"  the Platform API (confirmation): REDOX_PLATFORM_BASE_URL={url}/platform.")
        # Shown at once even when stdout is a pipe (e.g. under honcho in `make run`).
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
