"""A part's request reference is ON DELETE SET NULL in PostgreSQL itself (Django 5.2 does it
only in Python), so a raw DELETE of requests (retention) leaves the part, without its results.
(Apart from 0001: Django adds that migration's foreign keys at its end.)"""

from django.db import migrations

SET_NULL_IN_DATABASE = """
DO $$
DECLARE name text;
BEGIN
    SELECT conname INTO name FROM pg_constraint
     WHERE conrelid = 'batches_batchpart'::regclass
       AND confrelid = 'inference_inferencerequest'::regclass;
    EXECUTE format('ALTER TABLE batches_batchpart DROP CONSTRAINT %I', name);
END
$$;
ALTER TABLE batches_batchpart ADD CONSTRAINT batches_batchpart_request_id_set_null
    FOREIGN KEY (request_id) REFERENCES inference_inferencerequest (id)
    ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED;
"""



class Migration(migrations.Migration):

    dependencies = [
        ("batches", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(SET_NULL_IN_DATABASE, migrations.RunSQL.noop),
    ]
