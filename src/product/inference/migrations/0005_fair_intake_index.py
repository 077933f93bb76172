from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("inference", "0004_priority_clock_idempotency"),
        ("procrastinate", "__latest__"),
    ]

    operations = [
        # The runners' fair intake (fetch_fair in product/queue/intake.sql) skips through the
        # waiting jobs owner by owner, and reads each owner's oldest ones, by this index.
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS inference_fair_intake ON procrastinate_jobs "
            "(priority, (COALESCE(args->>'owner', '')), id) WHERE status = 'todo'",
            "DROP INDEX IF EXISTS inference_fair_intake",
        ),
    ]
