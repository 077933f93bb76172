from django.db import migrations

# Succeeded requests' embeddings, stored as JSON in ``output`` until 0006, become rows of
# inference_embedding (the JSON array's text is pgvector's input syntax), and ``output`` keeps
# the rest (e.g. {"dim": 384}). One statement: PostgreSQL parses each old result once.
MOVE_TO_ROWS = """
WITH old AS (
    SELECT id, output->'embeddings' AS embeddings
      FROM inference_inferencerequest
     WHERE status = 'succeeded' AND jsonb_typeof(output->'embeddings') = 'array'
       FOR UPDATE
),
moved AS (
    INSERT INTO inference_embedding (request_id, position, embedding)
    SELECT old.id, vector.ordinality - 1, vector.value::text::vector
      FROM old, jsonb_array_elements(old.embeddings) WITH ORDINALITY AS vector(value, ordinality)
)
UPDATE inference_inferencerequest AS r
   SET output = r.output - 'embeddings'
  FROM old
 WHERE r.id = old.id
"""

# Back to JSON, for going back to 0005 (a vector's text is a JSON array of numbers).
MOVE_TO_OUTPUT = """
WITH gone AS (
    DELETE FROM inference_embedding RETURNING request_id, position, embedding
),
arrays AS (
    SELECT request_id, jsonb_agg(embedding::text::jsonb ORDER BY position) AS embeddings
      FROM gone
     GROUP BY request_id
)
UPDATE inference_inferencerequest AS r
   SET output = COALESCE(r.output, '{}'::jsonb) || jsonb_build_object('embeddings', arrays.embeddings)
  FROM arrays
 WHERE r.id = arrays.request_id
"""


def embeddings_to_rows(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(MOVE_TO_ROWS)


def embeddings_to_output(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(MOVE_TO_OUTPUT)


class Migration(migrations.Migration):

    dependencies = [
        ("inference", "0006_inference_embedding"),
    ]

    operations = [migrations.RunPython(embeddings_to_rows, embeddings_to_output)]
