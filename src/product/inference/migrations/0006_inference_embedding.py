import django.db.models.deletion
import pgvector.django.vector
from django.db import migrations, models

from product.inference.vector_extension import vector_extension_enable


def enable_vector_extension(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        vector_extension_enable(cursor)


class Migration(migrations.Migration):
    """Embeddings move out of the request's JSON into pgvector rows (InferenceEmbedding)."""

    dependencies = [
        ("inference", "0005_fair_intake_index"),
    ]

    operations = [
        # Fails with a message naming what to install when the server has no pgvector. Going
        # back leaves the extension: other tables of the database may use it.
        migrations.RunPython(enable_vector_extension, migrations.RunPython.noop),
        migrations.SeparateDatabaseAndState(
            # Written out for ON DELETE CASCADE in the database (Django 5.2 cascades only in
            # Python), so a raw DELETE of requests (retention) takes their rows with them.
            database_operations=[
                migrations.RunSQL(
                    """
                    CREATE TABLE inference_embedding (
                        request_id bigint NOT NULL
                            REFERENCES inference_inferencerequest (id) ON DELETE CASCADE,
                        position integer NOT NULL CHECK (position >= 0),
                        embedding vector NOT NULL,
                        PRIMARY KEY (request_id, position)
                    )
                    """,
                    "DROP TABLE inference_embedding",
                ),
            ],
            state_operations=[
                migrations.CreateModel(
                    name="InferenceEmbedding",
                    fields=[
                        ("pk", models.CompositePrimaryKey("request_id", "position", blank=True, editable=False, primary_key=True, serialize=False)),
                        ("position", models.PositiveIntegerField(help_text="Which input of the request, from 0.")),
                        ("embedding", pgvector.django.vector.VectorField()),
                        ("request", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="embeddings", to="inference.inferencerequest")),
                    ],
                    options={"db_table": "inference_embedding"},
                ),
            ],
        ),
    ]
