"""Post sample Redox orders to our own webhook, as Redox's dev tools would."""

import json
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from redox.sample_messages import fresh_copy, order_list

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "order-new.json"
DEFAULT_URL = "http://127.0.0.1:8000/redox/webhook/"


def order_ids(payload: dict[str, Any]) -> str:
    return ",".join(str(order.get("ID")) for order in order_list(payload))


class Command(BaseCommand):
    help = "Post sample orders to the webhook as Redox would, each with fresh log ids (and order ids)."
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", type=Path, default=SAMPLE, help="Payload to post (default order-new.json).")
        parser.add_argument("--count", type=int, default=1, help="How many to post (default 1).")
        parser.add_argument("--url", default=DEFAULT_URL, help=f"Webhook URL (default {DEFAULT_URL}).")
        parser.add_argument(
            "--token",
            default=settings.REDOX_TEST_VERIFICATION_TOKEN,
            help="verification-token header (default: $REDOX_TEST_VERIFICATION_TOKEN or the demo token).",
        )
        parser.add_argument(
            "--keep-order-id",
            action="store_true",
            help="Keep the file's order ids (e.g. to post an Update or Cancel for an existing order).",
        )
        parser.add_argument("--timeout", type=float, default=10, help="Seconds to wait for each answer.")

    def handle(
        self,
        *args: Any,
        file: Path,
        count: int,
        url: str,
        token: str,
        keep_order_id: bool,
        timeout: float,
        **options: Any,
    ) -> None:
        if count < 1:
            raise CommandError("--count must be at least 1.")
        try:
            payload = json.loads(file.read_bytes())
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from None
        if not isinstance(payload, dict):
            raise CommandError(f"{file} is not a JSON object.")
        failures = 0
        for number in range(1, count + 1):
            message = fresh_copy(payload, new_order_id=not keep_order_id)
            log_id = message["Meta"]["Logs"][0]["ID"]
            try:
                response = requests.post(
                    url,
                    data=json.dumps(message).encode(),
                    headers={
                        "Content-Type": "application/json",
                        "verification-token": token,
                        "application-name": "RedoxEngine",
                    },
                    timeout=timeout,
                )
                outcome = f"HTTP {response.status_code}"
                ok = 200 <= response.status_code < 300
            except requests.RequestException as exc:
                outcome = f"failed: {type(exc).__name__}"
                ok = False
            failures += not ok
            self.stdout.write(f"{number}/{count} order {order_ids(message)} log {log_id} -> {outcome}")
        if failures:
            raise CommandError(f"{failures} of {count} posts were not accepted.")
