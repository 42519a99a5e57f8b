"""Note PDFs and Redox's raw bodies become EncryptedBinaryField (hcoint/fields.py).

The column type stays `bytea`, so this changes no SQL and rewrites no row: a table of
millions of bodies and gigabytes of notes is not rewritten inside a deploy. Rows stored
before it are legacy plaintext, which the field still reads; `manage.py reencrypt`
encrypts them afterwards, in batches (docs/runbook.md, "Encryption at rest").

The previous release cannot read encrypted values: stop its worker before deploying this
one, and see the runbook before rolling back past it (`reencrypt --decrypt`).
"""

import hcoint.fields
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("orders", "0017_retention"),
    ]

    operations = [
        migrations.AlterField(
            model_name="clinicalnote",
            name="content",
            field=hcoint.fields.EncryptedBinaryField(),
        ),
        migrations.AlterField(
            model_name="inboundmessage",
            name="body",
            field=hcoint.fields.EncryptedBinaryField(verbose_name="raw body"),
        ),
        migrations.AlterField(
            model_name="redelivery",
            name="body",
            field=hcoint.fields.EncryptedBinaryField(verbose_name="raw body"),
        ),
    ]
