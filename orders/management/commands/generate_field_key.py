"""Print a new key for FIELD_ENCRYPTION_KEYS: 32 random bytes as URL-safe base64.

    manage.py generate_field_key

It goes straight into the password manager and `aptible config:set` (docs/runbook.md,
"Encryption at rest"); it is printed, never logged.
"""

from django.core.management.base import BaseCommand

from hcoint.encryption import generate_key


class Command(BaseCommand):
    help = "Print a new random key for FIELD_ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        self.stdout.write(generate_key())
