"""The function the submit's token statement calls to count the user's queued texts."""

from django.db import migrations

# VOLATILE (and PL/pgSQL, which is never inlined): its query runs on a snapshot of its own, taken
# when it is called. Called in the RETURNING of the UPDATE that locks the user's quota row
# (services.submit_admit), it runs after that lock is held, so it counts the texts of the user's
# submits that committed while this one waited for the lock: the count and the lock in one round
# trip, as exact as a second statement would be.
CREATE = """
CREATE FUNCTION quota_queued_texts(owner bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN (SELECT COALESCE(SUM(item_count - items_done), 0)
              FROM inference_inferencerequest
             WHERE owner_id = owner AND status IN ('queued', 'running'));
END
$$
"""


class Migration(migrations.Migration):

    dependencies = [
        ("quotas", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(CREATE, "DROP FUNCTION quota_queued_texts(bigint)"),
    ]
