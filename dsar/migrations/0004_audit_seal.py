"""The audit chain moves from the entries to seals the database writes at commit.

Existing entries are checked against their old chain first (a broken trail is never re-sealed,
which would launder the tampering), then given a content hash and sealed in their old order.
"""

import hashlib
import json

import django.db.models.deletion
import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations, models

GENESIS = "0" * 64


def _content(entry, *, prev=None) -> str:
    body = {"request": str(entry.request_id), "at": entry.at.isoformat(), "actor": entry.actor, "action": entry.action,
            "from": entry.from_status, "to": entry.to_status, "note": entry.note, "data": entry.data}
    if prev is not None:
        body["prev"] = prev
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def reseal(apps, schema_editor):
    AuditEntry, AuditSeal = apps.get_model("dsar", "AuditEntry"), apps.get_model("dsar", "AuditSeal")
    previous, seals = GENESIS, []
    # The append-only guard set aside by the tables' owner for this transaction: it is no longer a
    # model's trigger (migration 0012), so pgtrigger.ignore cannot name it.
    schema_editor.execute("ALTER TABLE dsar_auditentry DISABLE TRIGGER pgtrigger_audit_append_only_7d24d")
    for seq, entry in enumerate(AuditEntry.objects.order_by("id").iterator(chunk_size=2000), start=1):
        if entry.prev_hash != previous or _content(entry, prev=entry.prev_hash) != entry.hash:
            raise RuntimeError(f"audit entry {entry.id} breaks the existing chain; run verify_audit on the previous "
                               "release and investigate before migrating")
        content_hash = _content(entry)
        AuditEntry.objects.filter(pk=entry.pk).update(content_hash=content_hash)
        seal_prev = seals[-1].hash if seals else GENESIS
        seal_hash = hashlib.sha256(f"{seal_prev}:{entry.id}:{content_hash}".encode()).hexdigest()
        seals.append(AuditSeal(entry_id=entry.id, seq=seq, prev_hash=seal_prev, hash=seal_hash))
        previous = entry.hash
    schema_editor.execute("ALTER TABLE dsar_auditentry ENABLE TRIGGER pgtrigger_audit_append_only_7d24d")
    AuditSeal.objects.bulk_create(seals, batch_size=2000)


class Migration(migrations.Migration):

    dependencies = [
        ('dsar', '0003_scheduled_jobs'),
    ]

    operations = [
        migrations.CreateModel(
            name='AuditSeal',
            fields=[
                ('entry', models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, primary_key=True, related_name='seal', serialize=False, to='dsar.auditentry')),
                ('seq', models.BigIntegerField(unique=True)),
                ('prev_hash', models.CharField(max_length=64)),
                ('hash', models.CharField(max_length=64, unique=True)),
            ],
            options={
                'ordering': ['seq'],
            },
        ),
        migrations.AddField(
            model_name='auditentry',
            name='content_hash',
            field=models.CharField(default='', help_text="SHA-256 of the entry's content (dsar.lifecycle.audit_content_hash).", max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(reseal, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name='auditentry',
            name='hash',
        ),
        migrations.RemoveField(
            model_name='auditentry',
            name='prev_hash',
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='auditentry',
            trigger=pgtrigger.compiler.Trigger(name='audit_no_truncate', sql=pgtrigger.compiler.UpsertTriggerSql(func="RAISE EXCEPTION 'pgtrigger: Cannot truncate % table', TG_TABLE_NAME;", hash='15ce01fd73f8e66827a8871f3020dd1d3e0dc52c', level='STATEMENT', operation='TRUNCATE', pgid='pgtrigger_audit_no_truncate_88dd7', table='dsar_auditentry', when='BEFORE')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='auditentry',
            trigger=pgtrigger.compiler.Trigger(name='audit_seal', sql=pgtrigger.compiler.UpsertTriggerSql(constraint='CONSTRAINT', declare='DECLARE last_seq bigint; last_hash text;', func="\n                PERFORM pg_advisory_xact_lock(1146306898);\n                SELECT seq, hash INTO last_seq, last_hash FROM dsar_auditseal ORDER BY seq DESC LIMIT 1;\n                last_hash := COALESCE(last_hash, '0000000000000000000000000000000000000000000000000000000000000000');\n                INSERT INTO dsar_auditseal (entry_id, seq, prev_hash, hash)\n                VALUES (NEW.id, COALESCE(last_seq, 0) + 1, last_hash,\n                        encode(sha256(convert_to(last_hash || ':' || NEW.id || ':' || NEW.content_hash, 'UTF8')), 'hex'));\n                RETURN NULL;\n                ", hash='2bc638cb0a21a4bfd6e6db71f4a466f522c2ba61', operation='INSERT', pgid='pgtrigger_audit_seal_7da09', table='dsar_auditentry', timing='DEFERRABLE INITIALLY DEFERRED', when='AFTER')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='auditseal',
            trigger=pgtrigger.compiler.Trigger(name='seal_append_only', sql=pgtrigger.compiler.UpsertTriggerSql(func="RAISE EXCEPTION 'pgtrigger: Cannot update or delete rows from % table', TG_TABLE_NAME;", hash='d6c5676d7fa98f177a47d2d1cb21e08fc7f60796', operation='UPDATE OR DELETE', pgid='pgtrigger_seal_append_only_177fa', table='dsar_auditseal', when='BEFORE')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='auditseal',
            trigger=pgtrigger.compiler.Trigger(name='seal_no_truncate', sql=pgtrigger.compiler.UpsertTriggerSql(func="RAISE EXCEPTION 'pgtrigger: Cannot truncate % table', TG_TABLE_NAME;", hash='6c722af68f4b60e5bfcdec77c0969343fa855c8f', level='STATEMENT', operation='TRUNCATE', pgid='pgtrigger_seal_no_truncate_989ad', table='dsar_auditseal', when='BEFORE')),
        ),
    ]
