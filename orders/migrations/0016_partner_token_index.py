"""Index the partner's token hashes: the webhook finds the partner by the SHA-256 of the
token each delivery presents (orders/models.py, PartnerQuerySet.for_token).

Additive: old containers neither need nor notice the indexes. The partner table holds a
handful of rows, so building them takes no noticeable lock.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0015_search_indexes'),
    ]

    operations = [
        migrations.AlterField(
            model_name='partner',
            name='second_token_hash',
            field=models.CharField(blank=True, db_index=True, editable=False, max_length=64),
        ),
        migrations.AlterField(
            model_name='partner',
            name='token_hash',
            field=models.CharField(db_index=True, editable=False, max_length=64),
        ),
    ]
