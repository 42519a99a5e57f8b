"""Create or update one partner (a hospital's Redox connection), idempotently.

    manage.py configure_partner --name "Cascade Health" --verification-token TOKEN \
        --destination-id ID --destination-name NAME [--outbound results|notes] [--second-token TOKEN] \
        [--production|--test]

`--production`/`--test` say which Redox environment the connection is; a message whose
`Meta.Test` disagrees is logged as `message.environment_mismatch` (see orders/ingest.py).
Token rules are `Partner.token_problems`, the same the admin form applies.

Running it again with the same values changes nothing. Tokens are stored hashed and
never printed. To rotate a token without downtime: add the new one with
`--second-token`, change it in Redox, then make it the `--verification-token` with
`--clear-second-token`.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from orders.audit import audit_record
from orders.models import AuditEvent, Partner

# Partner.token_problems' argument names -> this command's options.
TOKEN_OPTIONS = {
    "token": "--verification-token",
    "second_token": "--second-token",
    "clear_second_token": "--clear-second-token",
}


class Command(BaseCommand):
    help = "Create or update a partner (Redox connection) by name, idempotently."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="The partner's unique name.")
        parser.add_argument("--verification-token", help="The token Redox sends (required for a new partner).")
        parser.add_argument("--second-token", help="A second valid token, during a rotation.")
        parser.add_argument("--clear-second-token", action="store_true", help="End a rotation.")
        parser.add_argument("--destination-id", help="Redox destination id we send notes to.")
        parser.add_argument("--destination-name", help="Redox destination name.")
        parser.add_argument("--outbound", choices=Partner.Outbound.values, help="Results (default) or Notes.")
        connection = parser.add_mutually_exclusive_group()
        connection.add_argument(
            "--production",
            dest="is_production",
            action="store_true",
            default=None,
            help="A production connection: a message with Meta.Test true is flagged and alerts.",
        )
        connection.add_argument(
            "--test",
            dest="is_production",
            action="store_false",
            default=None,
            help="A Redox development or staging connection (the default for a new partner): "
            "a message with Meta.Test false is flagged and alerts.",
        )
        state = parser.add_mutually_exclusive_group()
        state.add_argument("--active", dest="is_active", action="store_true", default=None)
        state.add_argument("--inactive", dest="is_active", action="store_false", default=None)

    def handle(self, *args, **options):
        with transaction.atomic():
            partner = Partner.objects.select_for_update().filter(name=options["name"]).first()
            creating = partner is None
            if creating:
                missing = [
                    flag
                    for flag, key in (
                        ("--verification-token", "verification_token"),
                        ("--destination-id", "destination_id"),
                        ("--destination-name", "destination_name"),
                    )
                    if not options[key]
                ]
                if missing:
                    raise CommandError(f"A new partner needs {', '.join(missing)}.")
                partner = Partner(name=options["name"])
            changed = self._apply(partner, options)
            if changed:
                partner.full_clean()
                partner.save()
                audit_record(action=AuditEvent.Action.PARTNER_CHANGE, obj=partner)

        if creating:
            self.stdout.write(f"Created partner {partner.name!r} (id {partner.pk}).")
        elif changed:
            self.stdout.write(f"Updated partner {partner.name!r} (id {partner.pk}): {', '.join(changed)}.")
        else:
            self.stdout.write(f"Partner {partner.name!r} (id {partner.pk}) is already up to date.")

    def _apply(self, partner, options):
        """Set what the options ask for; returns the names of what changed (never token values)."""
        changed = []
        plain = {
            "destination_id": options["destination_id"],
            "destination_name": options["destination_name"],
            "outbound_model": options["outbound"],
            "is_production": options["is_production"],
            "is_active": options["is_active"],
        }
        for field_name, value in plain.items():
            if value is not None and getattr(partner, field_name) != value:
                setattr(partner, field_name, value)
                changed.append(field_name)

        tokens = (options["verification_token"], options["second_token"])
        problems = partner.token_problems(*tokens, clear_second_token=options["clear_second_token"])
        if problems:
            raise CommandError(" ".join(f"{TOKEN_OPTIONS[key]}: {message}" for key, message in problems.items()))
        changed += partner.set_tokens(*tokens, clear_second_token=options["clear_second_token"])
        return changed
