"""Prepare a development database for `make run`: a demo partner, a login, a few test orders.

Development only (refuses to run unless DEBUG). Safe to run at every start: the
partner is configured idempotently, the `demo` login gets a fresh password (printed,
since nobody could know it otherwise), and sample orders are loaded only once.
"""

import json
import secrets
import uuid
from pathlib import Path

from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from orders.ingest import message_ingest
from orders.models import Partner

PARTNER_NAME = "Demo Hospital (sandbox)"
USERNAME = "demo"
URL = "http://127.0.0.1:8000/"
SAMPLES = Path(settings.BASE_DIR) / "redox" / "samples"
DEMO_ORDERS = ("order-new.json", "order-grouped.json")


def _fresh(data):
    """A sample with new Redox log and order ids, so it is a new delivery of new orders."""
    data["Meta"]["Logs"] = [{"ID": str(uuid.uuid4()), "AttemptID": str(uuid.uuid4())}]
    for order in [data["Order"]] if "Order" in data else data.get("Orders", []):
        order["ID"] = str(secrets.randbelow(900_000_000) + 100_000_000)
    return data


class Command(BaseCommand):
    help = "Development only: configure the demo partner, the demo login and a few test orders."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("demo_setup only runs in development (DEBUG=true): it prints a password.")
        source = json.loads((SAMPLES / "order-new.json").read_bytes())["Meta"]["Source"]
        call_command(
            "configure_partner",
            name=PARTNER_NAME,
            verification_token=settings.REDOX_TEST_VERIFICATION_TOKEN,
            destination_id=source["ID"],
            destination_name=source["Name"],
            stdout=self.stdout,
        )
        partner = Partner.objects.get(name=PARTNER_NAME)
        password = self._demo_user()
        loaded = self._demo_orders(partner)

        if loaded:
            self.stdout.write(f"Loaded {loaded} test order(s) for {PARTNER_NAME}.")
        self.stdout.write("")
        self.stdout.write(f"  Open {URL} and sign in as:")
        self.stdout.write(f"    username: {USERNAME}")
        self.stdout.write(f"    password: {password}")
        if settings.MFA_REQUIRED:
            self.stdout.write("  You will be asked to set up an authenticator app (TOTP) first.")
        else:
            self.stdout.write("  MFA is off (MFA_REQUIRED=false, development only): no second step.")
        self.stdout.write("")

    def _demo_user(self):
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            user, _ = get_user_model().objects.get_or_create(username=USERNAME)
            user.is_staff = True
            user.is_superuser = True
            user.is_active = True
            user.set_password(password)
            user.save()
            admin_group = Group.objects.filter(name="admin").first()
            if admin_group is not None:
                user.groups.add(admin_group)
        # A lockout left over from an earlier session would hide the fresh password.
        axes_reset(username=USERNAME)
        return password

    def _demo_orders(self, partner):
        if partner.orders.exists():
            return 0
        for name in DEMO_ORDERS:
            body = json.dumps(_fresh(json.loads((SAMPLES / name).read_bytes())), indent=2).encode()
            message_ingest(partner=partner, body=body, headers={"user-agent": "hcoint demo_setup"})
        return partner.orders.count()
