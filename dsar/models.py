"""The workflow's tables. Models hold data and nothing else: every rule lives in a service module."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Now


class RequestType(models.TextChoices):
    ACCESS = "access"
    DELETION = "deletion"


class Status(models.TextChoices):
    UNVERIFIED = "unverified"
    PENDING_REVIEW = "pending_review"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    DENIED = "denied"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REFERRED = "referred"
    AWAITING_SUBJECT = "awaiting_subject"  # staff asked the person a question and wait for the answer


class DenialGround(models.TextChoices):
    """Why the law lets a whole request be refused, beyond an ordinary reason (GDPR Art. 12(5),
    CCPA §1798.145(h)(3)); none for an ordinary refusal."""

    NONE = "", "None: an ordinary refusal"
    MANIFESTLY_UNFOUNDED = "manifestly_unfounded", "Manifestly unfounded"
    EXCESSIVE = "excessive", "Excessive, for instance repetitive"


class Authority(models.TextChoices):
    """Whose authority a reviewer confirmed before approving a request flagged as a child's (GDPR Art.
    8, CCPA §1798.120(c))."""

    SUBJECT = "subject", "The child themselves"
    PARENT_OR_GUARDIAN = "parent_or_guardian", "A parent or guardian"


class Request(models.Model):
    """One data subject request, from filing to its export or deletion receipt."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=16, choices=RequestType.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNVERIFIED)
    email = models.CharField(max_length=254, help_text="Trimmed and lower-cased.")
    categories = models.JSONField(default=list, help_text="Requested category ids; all of them when filed without a choice.")
    jurisdiction = models.CharField(max_length=8)
    # What the person's browser said when they filed (the portal's script, or the API's fields): the
    # pages and emails they read give times in this zone and are written in this language.
    time_zone = models.CharField(max_length=64, default="UTC", db_default="UTC", help_text="An IANA time zone name, such as Europe/Berlin.")
    language = models.CharField(max_length=8, default="en", db_default="en", help_text="A language the product is written in (settings.LANGUAGES).")

    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField()
    extended_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True, help_text="When it reached a final status.")
    deadline_paused_at = models.DateTimeField(null=True, blank=True, help_text="Since when the deadline stands still: the "
                                              "person was asked a question during which the request's law stops the clock.")
    overdue_since = models.DateTimeField(null=True, blank=True, help_text="The deadline it passed unanswered, found by the "
                                         "deadline watch; kept whatever happens after.")

    code_hash = models.CharField(max_length=64, blank=True)
    code_expires_at = models.DateTimeField(null=True, blank=True)
    code_attempts = models.PositiveSmallIntegerField(default=0)
    code_sent_at = models.DateTimeField(null=True, blank=True)
    token_hash = models.CharField(max_length=64, blank=True)

    referred_to = models.CharField(max_length=200, blank=True, help_text="The organisation that manages the account, when "
                                   "part or all of the request was referred to it at verification.")
    # Database defaults too: the release before inserts rows that name none of these columns (docs/upgrading.md).
    referred_contact = models.TextField(blank=True, default="", db_default="", help_text="How to reach that organisation about "
                                        "privacy requests, as the systems hold it.")
    referred_systems = models.JSONField(default=list, db_default=[], blank=True,
                                        help_text='The systems whose data of this account the organisation controls, left to it: '
                                                  '[{"system": name, "categories": [the requested ids it can hold]}]; they get no '
                                                  'task.')
    refusals = models.JSONField(default=list, db_default=[], blank=True,
                                help_text='The parts staff refused at approval: [{"category": id} or {"system": name}, with '
                                          '"reason"]; taken out of what is gathered or erased.')
    denial_ground = models.CharField(max_length=24, choices=DenialGround.choices, default=DenialGround.NONE,
                                     db_default=DenialGround.NONE, blank=True,
                                     help_text="The ground of a denial, when the law's (manifestly unfounded, excessive).")
    minor_age = models.PositiveSmallIntegerField(null=True, blank=True, help_text="The lowest age a system shows the subject "
                                                 "may be, when under the age the request's law protects as a child's.")
    minor_age_source = models.CharField(max_length=200, blank=True, default="", db_default="",
                                        help_text="Where that age came from: the system, table and column.")
    authority_confirmed = models.CharField(max_length=24, choices=Authority.choices, blank=True, default="", db_default="",
                                           help_text="Whose authority the reviewer confirmed when approving a child's request.")
    result = models.JSONField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)

    anonymized_at = models.DateTimeField(null=True, blank=True, help_text="Personal data replaced by a keyed hash.")
    erasure_check = models.JSONField(null=True, blank=True, help_text="What the connectors still held a day after erasure.")
    retention_finding = models.JSONField(null=True, blank=True, help_text="What the export showed past the retention its "
                                         "category promises, per system and category; written when it completed.")
    # What the person chose when filing an access request (nullable: rows the release before inserts name none).
    date_from = models.DateField(null=True, blank=True, help_text="The first day of the period the person asked "
                                 "their data from, in their time zone; none: from the beginning.")
    date_to = models.DateField(null=True, blank=True, help_text="The last day of that period; none: up to now.")
    part_size = models.BigIntegerField(null=True, blank=True, help_text="The most bytes one part of the export "
                                       "should hold (it comes as several zips); none: one zip.")
    assigned_to = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="assigned_requests", help_text="The staff member working it, if anyone.")

    class Meta:
        indexes = [
            models.Index(fields=["status", "due_at"]),
            models.Index(fields=["email"]),
            models.Index(fields=["status", "completed_at"]),
            models.Index(fields=["status", "closed_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.type} request {self.id}"


class QuestionPurpose(models.TextChoices):
    """Why staff ask the person for more information before acting on a request."""

    IDENTITY = "identity", "Who is asking"  # reasonable doubts about the person's identity (GDPR Art. 12(6), 11(2))
    SCOPE = "scope", "What the request covers"  # which data or processing the request relates to (GDPR Recital 63)


class RequestQuestion(models.Model):
    """A question staff asked the person about their request, and the person's answer. The answer's
    file, if any, is kept in the storage under a name of the product's making, never the sender's."""

    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="questions")
    purpose = models.CharField(max_length=16, choices=QuestionPurpose.choices)
    text = models.TextField()
    asked_by = models.CharField(max_length=160, help_text="'staff:<username>', as the audit trail names them.")
    asked_at = models.DateTimeField()
    answer = models.TextField(blank=True)
    answer_file = models.CharField(max_length=300, blank=True, help_text="The file's path in the storage; empty when none came.")
    answer_content_type = models.CharField(max_length=100, blank=True,
                                           help_text="Read from the file's first bytes, not from what the sender said.")
    answered_at = models.DateTimeField(null=True, blank=True)
    reminders_sent = models.PositiveSmallIntegerField(default=0, help_text="Reminders emailed while it waited for an answer.")

    class Meta:
        constraints = [
            # A request waits for one answer at a time: it is asked again only once answered.
            models.UniqueConstraint(fields=["request"], condition=models.Q(answered_at__isnull=True),
                                    name="one_open_question_per_request"),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} question on {self.request_id}"


class TaskStatus(models.TextChoices):
    """Where a job row stands: a connector task or a request's final step."""

    WAITING = "waiting"  # a connector task waiting for identities other systems find
    WITH_STAFF = "with_staff", "With staff"  # a task of a system with no API, which staff work by hand (never a worker)
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ConnectorTask(models.Model):
    """The job of one connector for one request. This row, not the Celery message, is the job."""

    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="tasks")
    connector = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=TaskStatus.choices, default=TaskStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Claims by a worker, redeliveries included.")
    sweeps = models.PositiveSmallIntegerField(default=0, help_text="Times the sweeper revived it after its worker died.")
    claimed_by = models.CharField(max_length=200, blank=True, help_text="host:pid of the worker running it.")
    deliveries = models.PositiveSmallIntegerField(default=0, help_text="Claims, including redeliveries.")
    not_before = models.DateTimeField(null=True, blank=True, help_text="Backoff: not to run earlier.")
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True, help_text="Records per category (access) or erased per category (deletion).")
    output = models.JSONField(null=True, blank=True, help_text="Where the gathered records and files were staged.")
    receipt = models.JSONField(null=True, blank=True, help_text="What a deletion erased and retained.")
    identities = models.JSONField(null=True, blank=True, help_text="Identities the system found for others: name -> values.")
    # A database default, not only Django's: rows the release before inserts mid-upgrade name no such column.
    result_format = models.PositiveSmallIntegerField(db_default=1, help_text="Format of counts, receipt, identities (dsar/formats.py).")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["request", "connector"], name="one_task_per_connector"),
        ]
        indexes = [models.Index(fields=["status", "lease_until"])]

    def __str__(self) -> str:
        return f"{self.connector} for {self.request_id}"


class FinalStep(models.Model):
    """The one job that runs after a request's last connector task succeeded: it builds the export
    (access) or merges the receipts (deletion), then completes the request. Claimed, leased and
    swept like a connector task; one row per request."""

    request = models.OneToOneField(Request, on_delete=models.CASCADE, related_name="final_step")
    status = models.CharField(max_length=16, choices=TaskStatus.choices, default=TaskStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Claims by a worker, redeliveries included.")
    sweeps = models.PositiveSmallIntegerField(default=0, help_text="Times the sweeper revived it after its worker died.")
    claimed_by = models.CharField(max_length=200, blank=True, help_text="host:pid of the worker running it.")
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["status", "lease_until"])]

    def __str__(self) -> str:
        return f"final step of {self.request_id}"


class OutgoingEmail(models.Model):
    """An email waiting to go out: written in the transaction of the change it tells of, so it
    exists exactly when that change committed, and sent by a worker afterwards (dsar/notifications.py).
    A row that holds a code holds no code: the sender derives it again (dsar/verification.py)."""

    # No index but the key: the table holds only what is waiting, and each index is written twice an email.
    request = models.ForeignKey(Request, on_delete=models.CASCADE, null=True, blank=True, related_name="emails", db_index=False)
    to = models.JSONField(default=list, blank=True, help_text="Staff addresses; empty for the subject, whose address is read when sending.")
    template = models.CharField(max_length=32)
    context = models.JSONField(default=dict, blank=True, help_text="The template's values (datetimes tagged), besides the request.")
    created_at = models.DateTimeField()
    not_before = models.DateTimeField(help_text="Backoff: not to send earlier.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Sends that failed.")
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.template} email {self.pk}"


class ExportQuerySet(models.QuerySet):
    def erased(self) -> ExportQuerySet:
        """Exports of people whose data a deletion erased after the export was made: the copy must go too."""
        return self.filter(_erased_since())

    def not_erased(self) -> ExportQuerySet:
        return self.filter(~_erased_since())


def _erased_since() -> models.Exists:
    return models.Exists(Request.objects.filter(type=RequestType.DELETION, email=models.OuterRef("request__email"),
                                                completed_at__gte=models.OuterRef("created_at")))


class Export(models.Model):
    """The downloadable archive of a completed access request."""

    objects = ExportQuerySet.as_manager()

    request = models.OneToOneField(Request, on_delete=models.CASCADE, related_name="export")
    path = models.CharField(max_length=300)
    bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True, help_text="When the subject could first download it.")
    warned_at = models.DateTimeField(null=True, blank=True, help_text="When the person was told it expires soon.")
    deleted_at = models.DateTimeField(null=True, blank=True)
    # A database default too: the release before inserts rows that name no such column (docs/upgrading.md).
    others = models.PositiveIntegerField(default=0, db_default=0, help_text="Records and files that may be other people's data "
                                         "(GDPR Art. 15(4)): the export waits for staff to review them before release.")
    review = models.JSONField(null=True, blank=True, help_text='What staff decided for each of them, and who and when: {"decisions": '
                              '[{"item", "action", "fields", "reason", "reason_text"}], "by", "at"} (dsar/exports/review.py).')
    parts = models.JSONField(default=list, db_default=[], blank=True, help_text='The further zips of an export in parts, after the '
                             'first (`path`, `bytes`, `sha256` above): [{"path", "bytes", "sha256"}]; empty: one zip.')


AUDIT_CHAIN_LOCK = 0x44534152  # "DSAR": the advisory lock that gives the chain one order
GENESIS_HASH = "0" * 64


class AuditEntry(models.Model):
    """An append-only record of every transition and staff action. The application signs its
    content with a MAC under DSAR_AUDIT_KEY, a key the database never sees; the database stamps its
    time and, when the transaction commits, seals it into the chain. An entry about staff
    management rather than a request (a staff member added, a role changed) has no request.

    The guards are plain SQL triggers (migration 0012), not django-pgtrigger's: pgtrigger's own
    functions step aside for any session that sets `pgtrigger.ignore`, which any role can. Before
    insert, `at` becomes the database's clock and an entry without a MAC is refused; update,
    delete and truncate are refused to everyone; at commit, under one lock, the entry takes the
    next place in the chain (only the commit waits on the lock, never a round trip)."""

    # No database constraint: the trail outlives a purged unverified request (its entries hold no
    # personal data), and the append-only trigger forbids the cascade a constraint would need.
    request = models.ForeignKey(Request, on_delete=models.DO_NOTHING, db_constraint=False, null=True, blank=True, related_name="audit")
    at = models.DateTimeField(db_default=Now(), help_text="Set by the database as the entry is written, whatever the writer sent.")
    actor = models.CharField(max_length=160, help_text="'subject', 'system', or 'staff:<username>'.")
    action = models.CharField(max_length=40)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    note = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    nonce = models.CharField(max_length=32, blank=True, help_text="Random, under the MAC: no two entries have the same MAC, so none can be copied.")
    mac = models.CharField(max_length=64, blank=True, help_text="HMAC-SHA256 of the entry's content and nonce under DSAR_AUDIT_KEY "
                                                                 "(dsar.lifecycle.audit_entry_mac).")
    content_hash = models.CharField(max_length=64, blank=True, help_text="Entries written before the trail was keyed: SHA-256 of "
                                                                         "their content (dsar.lifecycle.audit_content_hash).")

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["mac"], condition=~models.Q(mac=""), name="audit_mac_unique")]


class AuditSeal(models.Model):
    """An entry's place in the tamper-evident chain: its hash covers the previous seal's hash, the
    entry's id, MAC and time and the seal's own time, so an edited, removed, reordered or replaced
    entry breaks it. Written only by the audit seal trigger, in commit order, under the chain's
    lock; append-only like the entries (migration 0012)."""

    entry = models.OneToOneField(AuditEntry, primary_key=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="seal")
    seq = models.BigIntegerField(unique=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    sealed_at = models.DateTimeField(null=True, blank=True, help_text="The database's clock under the chain's lock; never earlier than "
                                                                      "the seal before. None on seals made before the trail was keyed.")

    class Meta:
        ordering = ["seq"]


class DeadlineNotice(models.Model):
    """A deadline reminder or escalation, or a lapse email, already sent, so each is sent once."""

    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="deadline_notices")
    kind = models.CharField(max_length=16, help_text="'7d', '2d' (days before due), 'overdue', or 'lapsed' (never verified).")
    sent_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request", "kind"], name="one_notice_per_kind")]


class PurgeTally(models.Model):
    """How many never-verified requests were deleted on a day: the only trace they leave."""

    day = models.DateField(unique=True)
    count = models.PositiveIntegerField(default=0)


class StaffToken(models.Model):
    """An API token for a staff member, stored only as its SHA-256; it works until it expires or
    is revoked."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="dsar_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)


class SecondFactorSetupCode(models.Model):
    """A one-time code that lets a staff member set up their first authenticator, given to them by
    an admin (or by the operator, `manage.py staff_setup_code`): a password alone never enrols one.
    Stored only as its SHA-256; one a member, valid until `expires_at`."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="second_factor_setup_code")
    code_hash = models.CharField(max_length=64)
    expires_at = models.DateTimeField()


class SystemCheck(models.Model):
    """The last `systems check` of one system: what it found. Workers refuse a system whose last
    check found a problem, until a check finds none."""

    system = models.CharField(max_length=40, unique=True)
    checked_at = models.DateTimeField()
    problems = models.JSONField(default=list, help_text="Lines `where: what` of what stops the system from serving.")
    advice = models.JSONField(default=list, help_text="Lines `where: what` of what would serve it better.")


class NotificationStatus(models.TextChoices):
    """Where telling one recipient of an erasure stands."""

    QUEUED = "queued"  # waiting for a worker to send it (by email or webhook), or for its next attempt
    SENT = "sent"  # the webhook answered 2xx, or the email went to the outbox
    FAILED = "failed"  # given up after DSAR_RECIPIENT_NOTIFY_MAX_ATTEMPTS; staff can retry it
    WITH_STAFF = "with_staff", "With staff"  # told by hand, following the system file's instructions
    DONE = "done"  # staff told them, and said how


class NotificationMethod(models.TextChoices):
    EMAIL = "email"
    WEBHOOK = "webhook"
    MANUAL = "manual"


class RecipientNotification(models.Model):
    """Telling one recipient of one system that a deletion erased what it received (GDPR Art. 19,
    CCPA regulations §7022(b)): created in the transaction that completes the deletion, and a job
    like a connector task (dsar/recipients.py). Where to send it is read from the system file when
    it is sent, so no webhook secret is ever stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False, help_text="Also the event id a webhook carries: "
                                                                                          "the same on every attempt.")
    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="recipient_notifications")
    system = models.CharField(max_length=40)
    recipient = models.CharField(max_length=200, help_text="The recipient's name, as its system file declares it.")
    method = models.CharField(max_length=16, choices=NotificationMethod.choices)
    categories = models.JSONField(default=list, help_text="What the system erased of what the recipient receives.")
    identities = models.JSONField(default=dict, blank=True, help_text="name -> values the recipient finds the person by; emptied "
                                                                      "once they are told.")
    status = models.CharField(max_length=16, choices=NotificationStatus.choices)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Sends that were tried.")
    not_before = models.DateTimeField(help_text="Backoff: not to send earlier.")
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.CharField(max_length=160, blank=True, help_text="'staff:<username>' who told them by hand.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request", "system", "recipient"], name="one_notification_per_recipient")]
        indexes = [models.Index(fields=["status", "not_before"])]

    def __str__(self) -> str:
        return f"{self.recipient} ({self.system}) of {self.request_id}"


class StaffPreference(models.Model):
    """A staff member's own console settings: the time zone the console gives times in. The browser
    sets it at sign-in until the member chooses one on their settings page."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="console_preference")
    time_zone = models.CharField(max_length=64, default="UTC", help_text="An IANA time zone name, such as Europe/Berlin.")
    time_zone_chosen = models.BooleanField(default=False, help_text="Chosen on the settings page: the browser's zone no "
                                                                     "longer replaces it at sign-in.")
