"""Fill InboundMessage.body_sha256 for the messages stored before the field existed.

In batches, each in its own transaction (the migration is not atomic), so the webhook,
which still runs while a release migrates, never waits long behind a locked message.
Rows the previous release inserts meanwhile keep "", which ingest handles by hashing
the body when it needs to; running this again fills them too.
"""

import hashlib

from django.db import migrations, transaction

BATCH = 200


def fill_body_sha256(apps, schema_editor):
    InboundMessage = apps.get_model("orders", "InboundMessage")
    last_pk = 0
    while True:
        with transaction.atomic(using=schema_editor.connection.alias):
            batch = list(
                InboundMessage.objects.filter(body_sha256="", pk__gt=last_pk).order_by("pk").only("pk", "body")[:BATCH]
            )
            for message in batch:
                InboundMessage.objects.filter(pk=message.pk).update(
                    body_sha256=hashlib.sha256(bytes(message.body)).hexdigest()
                )
        if not batch:
            return
        last_pk = batch[-1].pk


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("orders", "0005_redeliveries_and_body_sha256"),
    ]

    operations = [
        migrations.RunPython(fill_body_sha256, migrations.RunPython.noop, elidable=True),
    ]
