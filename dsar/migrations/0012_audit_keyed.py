"""The audit trail keyed and stamped by the database, its guards plain SQL triggers.

django-pgtrigger's generated functions return early for any session whose `pgtrigger.ignore`
setting names them, and any role may set it: a role granted UPDATE could rewrite the trail. These
triggers read no setting; only a superuser (`session_replication_role`) or the tables' owner
(`ALTER TABLE … DISABLE TRIGGER`) can set them aside, and `verify_audit` with the shipped heads is
what catches that.

Existing entries keep their SHA-256 content hash and their seals the old link (no time); they still
verify, as unkeyed. From here on the application gives each entry a MAC under DSAR_AUDIT_KEY, the
database sets `at`, and each seal records when it was made and covers the entry's MAC and time.
"""

import django.db.models.functions.datetime
import pgtrigger.migrations
from django.db import migrations, models


# Refuses any UPDATE, DELETE or TRUNCATE, whoever asks and whatever the session has set.
APPEND_ONLY = """
CREATE FUNCTION dsar_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END $$;
CREATE TRIGGER dsar_auditentry_append_only BEFORE UPDATE OR DELETE ON dsar_auditentry
    FOR EACH ROW EXECUTE FUNCTION dsar_audit_append_only();
CREATE TRIGGER dsar_auditentry_no_truncate BEFORE TRUNCATE ON dsar_auditentry
    FOR EACH STATEMENT EXECUTE FUNCTION dsar_audit_append_only();
CREATE TRIGGER dsar_auditseal_append_only BEFORE UPDATE OR DELETE ON dsar_auditseal
    FOR EACH ROW EXECUTE FUNCTION dsar_audit_append_only();
CREATE TRIGGER dsar_auditseal_no_truncate BEFORE TRUNCATE ON dsar_auditseal
    FOR EACH STATEMENT EXECUTE FUNCTION dsar_audit_append_only();
"""

# The database's clock, whatever time the writer sent; and no entry without its MAC (every writer
# of the application has the key, so an entry without one was written around it).
STAMP = """
CREATE FUNCTION dsar_audit_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF COALESCE(NEW.mac, '') = '' THEN
        RAISE EXCEPTION 'an audit entry needs its MAC (dsar.lifecycle.audit_entry_new)';
    END IF;
    NEW.at := statement_timestamp();
    RETURN NEW;
END $$;
CREATE TRIGGER dsar_auditentry_stamp BEFORE INSERT ON dsar_auditentry
    FOR EACH ROW EXECUTE FUNCTION dsar_audit_stamp();
"""

# At commit, under the chain's advisory lock (dsar.models.AUDIT_CHAIN_LOCK, 0x44534152): the entry
# takes the next place, and the seal records the time it was made, so times along the chain never
# go back. The hash is dsar.lifecycle.audit_seal_hash's; times are written as UTC to the microsecond.
SEAL = """
CREATE FUNCTION dsar_audit_seal() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last_seq bigint;
    last_hash text;
    sealed timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(1146306898);
    SELECT seq, hash INTO last_seq, last_hash FROM dsar_auditseal ORDER BY seq DESC LIMIT 1;
    last_hash := COALESCE(last_hash, '0000000000000000000000000000000000000000000000000000000000000000');
    sealed := clock_timestamp();
    INSERT INTO dsar_auditseal (entry_id, seq, prev_hash, hash, sealed_at)
    VALUES (NEW.id, COALESCE(last_seq, 0) + 1, last_hash,
            encode(sha256(convert_to(concat_ws(':', last_hash, NEW.id, NEW.mac,
                to_char(NEW.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
                to_char(sealed AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')), 'UTF8')), 'hex'),
            sealed);
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER dsar_auditentry_seal AFTER INSERT ON dsar_auditentry
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dsar_audit_seal();
"""

DROP = """
DROP TRIGGER dsar_auditentry_seal ON dsar_auditentry;
DROP TRIGGER dsar_auditentry_stamp ON dsar_auditentry;
DROP TRIGGER dsar_auditentry_append_only ON dsar_auditentry;
DROP TRIGGER dsar_auditentry_no_truncate ON dsar_auditentry;
DROP TRIGGER dsar_auditseal_append_only ON dsar_auditseal;
DROP TRIGGER dsar_auditseal_no_truncate ON dsar_auditseal;
DROP FUNCTION dsar_audit_seal();
DROP FUNCTION dsar_audit_stamp();
DROP FUNCTION dsar_audit_append_only();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('dsar', '0011_staff_token_expiry'),
    ]

    operations = [
        pgtrigger.migrations.RemoveTrigger(
            model_name='auditentry',
            name='audit_append_only',
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name='auditentry',
            name='audit_no_truncate',
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name='auditentry',
            name='audit_seal',
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name='auditseal',
            name='seal_append_only',
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name='auditseal',
            name='seal_no_truncate',
        ),
        migrations.AddField(
            model_name='auditentry',
            name='mac',
            field=models.CharField(blank=True, help_text="HMAC-SHA256 of the entry's content and nonce under DSAR_AUDIT_KEY (dsar.lifecycle.audit_entry_mac).", max_length=64),
        ),
        migrations.AddField(
            model_name='auditentry',
            name='nonce',
            field=models.CharField(blank=True, help_text='Random, under the MAC: no two entries have the same MAC, so none can be copied.', max_length=32),
        ),
        migrations.AddField(
            model_name='auditseal',
            name='sealed_at',
            field=models.DateTimeField(blank=True, help_text="The database's clock under the chain's lock; never earlier than the seal before. None on seals made before the trail was keyed.", null=True),
        ),
        migrations.AlterField(
            model_name='auditentry',
            name='at',
            field=models.DateTimeField(db_default=django.db.models.functions.datetime.Now(), help_text='Set by the database as the entry is written, whatever the writer sent.'),
        ),
        migrations.AlterField(
            model_name='auditentry',
            name='content_hash',
            field=models.CharField(blank=True, help_text='Entries written before the trail was keyed: SHA-256 of their content (dsar.lifecycle.audit_content_hash).', max_length=64),
        ),
        migrations.AddConstraint(
            model_name='auditentry',
            constraint=models.UniqueConstraint(condition=models.Q(('mac', ''), _negated=True), fields=('mac',), name='audit_mac_unique'),
        ),
        # Reversed, these go and the RemoveTrigger operations above bring pgtrigger's back.
        migrations.RunSQL(APPEND_ONLY + STAMP + SEAL, reverse_sql=DROP),
    ]
