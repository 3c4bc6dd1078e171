"""The staff API: the review queue, a request's tasks and audit trail, the review actions (one request or several),
assignment and internal notes."""

from __future__ import annotations

import datetime as dt

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import exports, selectors, services
from ..models import (AuditEntry, Authority, ConnectorTask, DenialGround, Export, QuestionPurpose, RecipientNotification, Request,
                      RequestQuestion, RequestType, Status)
from ..staff import staff_actor
from .auth import IsReviewer, StaffTokenAuthentication
from .common import ReasonField, StrictSerializer, TextField, errors, validated

ASSIGNED_ME, ASSIGNED_NOBODY = "me", "nobody"


class StaffApi(APIView):
    authentication_classes = [StaffTokenAuthentication]
    permission_classes = [IsReviewer]


class TaskSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConnectorTask
        fields = ["connector", "status", "attempts", "last_error", "last_error_at", "counts", "started_at", "finished_at"]


class RecipientNotificationSerializer(serializers.ModelSerializer):
    """Telling one recipient of a system about the request's erasure (docs/erasure-webhook.md)."""

    class Meta:
        model = RecipientNotification
        fields = ["id", "recipient", "system", "method", "categories", "status", "attempts", "not_before", "last_error", "sent_at",
                  "done_at", "done_by"]


class AuditSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["at", "actor", "action", "from_status", "to_status", "note", "data"]


class QuestionSerializer(serializers.ModelSerializer):
    """A question staff asked the person and their answer; an answer's file is downloaded from the console."""

    class Meta:
        model = RequestQuestion
        fields = ["id", "purpose", "text", "asked_by", "asked_at", "answer", "answer_content_type", "answered_at",
                  "reminders_sent"]


class CategoryRefusalSerializer(StrictSerializer):
    """A category of the request refused at its approval: neither gathered nor erased."""

    category = TextField(max_length=100, trim_whitespace=False, help_text="A category id the request asks for.")
    reason = ReasonField(max_length=2000, help_text="Why, in words the person is emailed.")


class SystemRefusalSerializer(StrictSerializer):
    """A system refused at the request's approval: it gets no task."""

    system = TextField(max_length=64, trim_whitespace=False, help_text="A configured system's name.")
    reason = ReasonField(max_length=2000, help_text="Why, in words the person is emailed.")


@extend_schema_field(PolymorphicProxySerializer(component_name="Refusal", resource_type_field_name=None,
                                                serializers=[CategoryRefusalSerializer, SystemRefusalSerializer]))
class RefusalField(serializers.Field):
    """A part of a request refused at its approval: a category or a system, by the key it names."""

    def to_internal_value(self, data):
        kind = CategoryRefusalSerializer if isinstance(data, dict) and "category" in data else SystemRefusalSerializer
        return validated(kind, data)

    def to_representation(self, value):
        return value


class ReferredSystemSerializer(serializers.Serializer):
    """A system whose data of the account the managing organisation controls, referred to it at
    verification: it gets no task. A referral, not a refusal."""

    system = serializers.CharField(help_text="The configured system's name.")
    categories = serializers.ListField(child=serializers.CharField(), help_text="The request's category ids the system can hold.")


class StaffRequestSerializer(serializers.ModelSerializer):
    overdue = serializers.SerializerMethodField()
    assigned_to = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True,
                                               help_text="The username of the staff member working it; null for nobody.")
    refusals = serializers.ListField(child=RefusalField(), read_only=True,
                                     help_text="The parts refused at approval; the rest was answered.")
    referred_systems = ReferredSystemSerializer(
        many=True, read_only=True, help_text="The systems left to the organisation that manages the account (`referred_to`, reached "
                                             "at `referred_contact`), whose data it is; the rest is answered here. With status "
                                             "`referred`, the whole request went to it.")

    class Meta:
        model = Request
        fields = [
            "id", "type", "status", "email", "categories", "jurisdiction", "created_at", "verified_at", "due_at",
            "deadline_paused_at", "extended_at", "completed_at", "overdue", "overdue_since", "referred_to", "failure_reason",
            "result", "erasure_check", "refusals", "denial_ground", "referred_contact", "referred_systems", "minor_age",
            "minor_age_source", "authority_confirmed", "assigned_to",
        ]

    def get_overdue(self, request: Request) -> bool:
        return selectors.request_overdue(request)


class ReviewDecisionSerializer(StrictSerializer):
    """What staff decided for one record or file of an export that may be other people's data."""

    item = TextField(max_length=300, trim_whitespace=False, help_text="The item's `id`, from `GET .../review`.")
    action = serializers.ChoiceField(choices=exports.ACTIONS, help_text="Release it as it is, withhold it, or redact fields of a record.")
    fields = serializers.ListField(child=TextField(max_length=200, trim_whitespace=False), required=False, default=list, max_length=100,
                                   help_text="For `redact`: the `paths` of the item to hide; the archive shows `[redacted]` in their place.")
    reason = serializers.ChoiceField(choices=[*exports.REASONS, exports.OTHER], required=False, allow_blank=True, default="",
                                     help_text="For `withhold` and `redact`: why, as the person is told it; `other`: `reason_text` says it.")
    reason_text = TextField(required=False, allow_blank=True, max_length=2000, default="", help_text="The reason in the reviewer's words.")


class ExportReviewSerializer(serializers.Serializer):
    """What the review of other people's data decided, by whom and when."""

    decisions = ReviewDecisionSerializer(many=True)
    by = serializers.CharField(help_text="'staff:<username>'.")
    at = serializers.DateTimeField()


class ExportSerializer(serializers.ModelSerializer):
    """An access request's export: its size and download period, and what may be other people's data in it."""

    others = serializers.IntegerField(help_text="Records and files that may be other people's data: the export waits for their "
                                                "review before release (GDPR Art. 15(4)).")
    review = ExportReviewSerializer(allow_null=True, help_text="The review's decisions, once staff released the export as decided.")

    class Meta:
        model = Export
        fields = ["bytes", "created_at", "expires_at", "released_at", "deleted_at", "others", "review"]


class RetentionFindingSerializer(serializers.Serializer):
    """Records an access request's export showed past the retention their category promises, of
    one system and category (dsar/exports/retention.py)."""

    system = serializers.CharField(help_text="Where they are held: a system, or one of its tables (`payments.transactions`).")
    category = serializers.CharField(help_text="The category id.")
    reason = serializers.ChoiceField(choices=exports.RETENTION_REASONS, help_text=(
        "`older_than_promised`: collected longer ago than the category's `retention_days`; "
        "`past_retention_date`: past the date a retention rule keeps them until."))
    records = serializers.IntegerField(help_text="How many, each stored file counting as one, as in the export.")
    files = serializers.IntegerField(help_text="How many of them are stored files.")
    oldest_collected_at = serializers.DateTimeField(allow_null=True, help_text="When the oldest was collected, if known.")
    retained_until = serializers.DateTimeField(allow_null=True, help_text="The earliest retention date passed (`past_retention_date`).")
    retention_days = serializers.IntegerField(allow_null=True, help_text="The category's promise in days (`older_than_promised`).")
    retention = serializers.CharField(help_text="The category's retention, in the taxonomy's words.")


class StaffRequestDetailSerializer(StaffRequestSerializer):
    tasks = TaskSerializer(many=True)
    recipient_notifications = RecipientNotificationSerializer(many=True)
    audit = AuditSerializer(many=True)
    questions = QuestionSerializer(many=True)
    export = ExportSerializer(allow_null=True, read_only=True, help_text="An access request's export, once made.")
    retention_finding = RetentionFindingSerializer(many=True, allow_null=True, help_text=(
        "What the export showed past the retention its category promises; null when nothing was, or before it completed."))

    class Meta(StaffRequestSerializer.Meta):
        fields = [*StaffRequestSerializer.Meta.fields, "tasks", "recipient_notifications", "audit", "questions", "export",
                  "retention_finding"]


class QueuePagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_schema_operation_parameters(self, view):
        return [
            {"name": "page", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}},
            {"name": "page_size", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size}},
        ]


class StaffRequestListApi(ListAPIView):
    authentication_classes = [StaffTokenAuthentication]
    permission_classes = [IsReviewer]
    serializer_class = StaffRequestSerializer
    pagination_class = QueuePagination

    class QueueFilterSerializer(StrictSerializer):
        status = serializers.ChoiceField(choices=Status.choices, required=False)
        type = serializers.ChoiceField(choices=RequestType.choices, required=False)
        overdue = serializers.BooleanField(required=False)
        needs_action = serializers.BooleanField(required=False)
        assigned = serializers.ChoiceField(choices=[ASSIGNED_ME, ASSIGNED_NOBODY], required=False)
        # A range that ends before it starts is empty, not an error: any day is a day.
        received_from = serializers.DateField(required=False)
        received_to = serializers.DateField(required=False)
        due_from = serializers.DateField(required=False)
        due_to = serializers.DateField(required=False)
        page = serializers.IntegerField(required=False, min_value=1)
        page_size = serializers.IntegerField(required=False, min_value=1, max_value=200)

    @extend_schema(
        operation_id="staff_request_list",
        parameters=[
            OpenApiParameter("status", str, enum=Status.values),
            OpenApiParameter("type", str, enum=RequestType.values),
            OpenApiParameter("overdue", bool),
            OpenApiParameter("needs_action", bool, description="Only what staff must act on, as the console's queue opens: pending "
                                                               "review, an export awaiting release, failed, or open work due within 7 days."),
            OpenApiParameter("assigned", str, enum=[ASSIGNED_ME, ASSIGNED_NOBODY],
                             description="`me`: assigned to the caller; `nobody`: assigned to no one."),
            *(OpenApiParameter(name, OpenApiTypes.DATE, description=words) for name, words in (
                ("received_from", "Received on or after this day (UTC)."), ("received_to", "Received on or before this day (UTC)."),
                ("due_from", "Due on or after this day (UTC)."), ("due_to", "Due on or before this day (UTC)."))),
        ],
        responses={200: StaffRequestSerializer(many=True), **errors(400, 401, 403, 404)},
        summary="The review queue, soonest due first.",
    )
    def get(self, http_request, *args, **kwargs):
        return super().get(http_request, *args, **kwargs)

    def get_queryset(self):
        filters = validated(self.QueueFilterSerializer, self.request.query_params.dict())
        return selectors.request_list(
            status=filters.get("status"), type=filters.get("type"), overdue=filters.get("overdue"),
            needs_action=filters.get("needs_action", False),
            assignee_id=self.request.user.pk if filters.get("assigned") == ASSIGNED_ME else None,
            unassigned=filters.get("assigned") == ASSIGNED_NOBODY,
            received_from=_utc_day(filters.get("received_from")), received_before=_utc_day(filters.get("received_to"), after=True),
            due_from=_utc_day(filters.get("due_from")), due_before=_utc_day(filters.get("due_to"), after=True))


def _utc_day(day: dt.date | None, *, after: bool = False) -> dt.datetime | None:
    """When `day` (or, `after`, the day after it) starts in UTC; None for no bound, as after the calendar's last day."""
    if day is None or after and day == dt.date.max:
        return None
    return dt.datetime.combine(day + dt.timedelta(days=after), dt.time.min, tzinfo=dt.UTC)


class StrictUUIDField(serializers.UUIDField):
    """A request id as JSON text only: DRF's field would take a number (false is 0) as one."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class StaffRequestGetApi(StaffApi):
    @extend_schema(
        operation_id="staff_request_get",
        responses={200: StaffRequestDetailSerializer, **errors(401, 403, 404)},
        summary="A request with its connector tasks, the notifications telling its recipients of its erasure, and its audit trail.",
    )
    def get(self, http_request, request_id):
        return Response(StaffRequestDetailSerializer(selectors.request_get(request_id=request_id)).data)


APPROVE = """Start processing a request under review. `refuse` lists the parts that will not be answered, each a
category or a system with its reason: a refused category is neither gathered nor erased, a refused system gets no
task, and the person is emailed what was refused and why. Errors: `invalid` (the field named: a refusal without a
reason, or not naming one category or one system), `invalid_category` (not in the taxonomy),
`category_not_requested`, `invalid_system`, `system_referred` (the system's data was referred to the organisation managing
the account at verification: it is not answered here), `duplicate_refusal`, `system_needed` (a system left is found by
identities a refused one finds), `deny_instead` (everything refused: deny the request instead); 409
`illegal_transition` when the request is not under review. Nothing changes on an error.

A request whose subject may be a child (`minor_age` set at verification) needs `authority`, whose authority the
reviewer confirmed: `subject` or `parent_or_guardian`. Under the youngest age (`DSAR_CHILD_YOUNGEST_AGE`) only a
parent's or guardian's releases the taxonomy's sensitive categories (location, pictures, voice, video);
`withhold_sensitive` refuses them instead, and the person is told why and how a parent or guardian can obtain them.
Errors: `authority_required`, `invalid` (an unknown authority, the field named), `parent_or_guardian_required`,
`not_a_child` (an authority or withholding for a request not flagged as a child's)."""

DENY = """Refuse a whole request with a reason the person is emailed. `ground`, when the law's: the request is
`manifestly_unfounded` or `excessive` (in particular repetitive; GDPR Art. 12(5), CCPA §1798.145(h)(3)); the reason
must show it, and the email names the ground. Left out: an ordinary refusal. Errors: `invalid` (no reason, or an
unknown ground, with the field named); 409 `illegal_transition`. Nothing changes on an error."""


class StaffApproveApi(StaffApi):
    class ApproveInputSerializer(StrictSerializer):
        note = TextField(required=False, allow_blank=True, max_length=2000, default="")
        refuse = serializers.ListField(child=RefusalField(), required=False, default=list, max_length=100,
                                       help_text="Parts not answered.")
        authority = serializers.ChoiceField(choices=Authority.choices, required=False,
                                            help_text="For a child's request: whose authority was confirmed.")
        withhold_sensitive = serializers.BooleanField(required=False, default=False,
                                                      help_text="For a child's access request: withhold the sensitive categories.")

    @extend_schema(operation_id="staff_request_approve", request=ApproveInputSerializer, description=APPROVE,
                   responses={200: StaffRequestDetailSerializer, **errors(400, 401, 403, 404, 409, 413)})
    def post(self, http_request, request_id):
        data = validated(self.ApproveInputSerializer, http_request.data)
        services.request_approve(request_id=request_id, actor=staff_actor(http_request.user), note=data["note"],
                                 refuse=data["refuse"], authority=data.get("authority", ""),
                                 withhold_sensitive=data["withhold_sensitive"])
        return Response(StaffRequestDetailSerializer(selectors.request_get(request_id=request_id)).data)


class StaffDenyApi(StaffApi):
    class DenyInputSerializer(StrictSerializer):
        reason = ReasonField(max_length=2000)
        ground = serializers.ChoiceField(choices=[choice for choice in DenialGround.choices if choice[0]], required=False,
                                         help_text="The law's ground, if any; leave it out otherwise.")

    @extend_schema(operation_id="staff_request_deny", request=DenyInputSerializer, description=DENY,
                   responses={200: StaffRequestDetailSerializer, **errors(400, 401, 403, 404, 409, 413)})
    def post(self, http_request, request_id):
        data = validated(self.DenyInputSerializer, http_request.data)
        services.request_deny(request_id=request_id, actor=staff_actor(http_request.user), reason=data["reason"],
                              ground=data.get("ground", DenialGround.NONE))
        return Response(StaffRequestDetailSerializer(selectors.request_get(request_id=request_id)).data)


class StaffExtendApi(StaffApi):
    class ExtendInputSerializer(StrictSerializer):
        reason = ReasonField(max_length=2000)
        days = serializers.IntegerField(min_value=1, max_value=366)

    @extend_schema(operation_id="staff_request_extend", request=ExtendInputSerializer, responses={200: StaffRequestDetailSerializer, **errors(400, 401, 403, 404, 409, 413)})
    def post(self, http_request, request_id):
        data = validated(self.ExtendInputSerializer, http_request.data)
        services.request_extend(request_id=request_id, actor=staff_actor(http_request.user), reason=data["reason"], days=data["days"])
        return Response(StaffRequestDetailSerializer(selectors.request_get(request_id=request_id)).data)


class StaffRetryApi(StaffApi):
    @extend_schema(operation_id="staff_request_retry", request=None, responses={200: StaffRequestDetailSerializer, **errors(401, 403, 404, 409)})
    def post(self, http_request, request_id):
        services.request_retry(request_id=request_id, actor=staff_actor(http_request.user))
        return Response(StaffRequestDetailSerializer(selectors.request_get(request_id=request_id)).data)


class StaffAskApi(StaffApi):
    class AskInputSerializer(StrictSerializer):
        question = ReasonField(max_length=2000)
        purpose = serializers.ChoiceField(choices=QuestionPurpose.choices)

    @extend_schema(operation_id="staff_request_ask", request=AskInputSerializer,
                   responses={200: StaffRequestDetailSerializer, **errors(400, 401, 403, 404, 409, 413)},
                   summary="Ask the person a question (pending_review -> awaiting_subject); they are emailed it and answer on their page.")
    def post(self, http_request, request_id):
        data = validated(self.AskInputSerializer, http_request.data)
        services.request_ask(request_id=request_id, actor=staff_actor(http_request.user), question=data["question"],
                             purpose=data["purpose"])
        return Response(StaffRequestDetailSerializer(selectors.request_get(request_id=request_id)).data)


REVIEW = """What an export held for review holds that may be other people's data (GDPR Art. 15(4)): each record or file
with its `id`, its fields and the `paths` of the fields a redaction may hide (a file's record: its name and size);
and the reasons to choose from. Errors: 409 `illegal_transition` (no export), `already_released`, `nothing_to_review`."""

RELEASE_REVIEWED = """Release an export held because it may hold other people's data, as decided for each of its items (`GET
.../review`): `release` it as it is, `withhold` it, or `redact` fields of a record, anything withheld or redacted with
its `reason`. The archive is written again from the staged work without what is withheld and with `[redacted]` in place
of each redacted field; its report says per category how many items were left out or partly hidden and why; it
replaces the held archive and is released, and the person is emailed the link and what was withheld. The decisions
are kept on the export and in the audit trail. Errors: `invalid` (the field named), `unknown_item`,
`duplicate_decision`, `decision_missing` (every item needs one), `invalid_action` (a file cannot be redacted),
`invalid_fields` (fields are named for `redact` only, and it needs some), `unknown_field` (the item has no such path),
`invalid_reason`, `reason_required` (none given, or `other` without `reason_text`); 409 `illegal_transition`,
`already_released`, `nothing_to_review`. At most 500 decisions: the console takes an export holding more. Nothing
changes on an error."""


class ReviewItemSerializer(serializers.Serializer):
    """A record or file of a held export that may be other people's data."""

    id = serializers.CharField(help_text="Names the item in a decision.")
    connector = serializers.CharField()
    category = serializers.CharField()
    system = serializers.CharField(help_text="Where it was found (the system and its table or list).")
    file = serializers.CharField(allow_null=True, help_text="The archive member the record stands for, if it is a file's.")
    fields = serializers.JSONField(help_text="The record's fields, as the archive holds them.")
    paths = serializers.ListField(child=serializers.CharField(), help_text="The fields a redaction may hide: nested ones dotted, "
                                                                          "a list's elements by position (`messages.1.body`).")


class StaffReviewApi(StaffApi):
    class ReviewOutputSerializer(serializers.Serializer):
        items = ReviewItemSerializer(many=True)
        reasons = serializers.DictField(child=serializers.CharField(), help_text="The reasons by code, in the words the person reads; "
                                                                                 "`other` takes the reviewer's own (`reason_text`).")

    class ReleaseReviewedInputSerializer(StrictSerializer):
        decisions = ReviewDecisionSerializer(many=True, max_length=500, help_text="One decision for each item.")
        note = TextField(required=False, allow_blank=True, max_length=2000, default="")

    @extend_schema(operation_id="staff_request_review_get", description=REVIEW,
                   responses={200: ReviewOutputSerializer, **errors(401, 403, 404, 409)})
    def get(self, http_request, request_id):
        items = services.request_review_items(request_id=request_id)
        return Response(self.ReviewOutputSerializer({"items": items, "reasons": exports.REASONS}).data)

    @extend_schema(operation_id="staff_request_release_reviewed", request=ReleaseReviewedInputSerializer, description=RELEASE_REVIEWED,
                   responses={200: StaffRequestDetailSerializer, **errors(400, 401, 403, 404, 409, 413)})
    def post(self, http_request, request_id):
        data = validated(self.ReleaseReviewedInputSerializer, http_request.data)
        services.request_release_reviewed(request_id=request_id, actor=staff_actor(http_request.user), decisions=data["decisions"],
                                          note=data["note"])
        return Response(StaffRequestDetailSerializer(selectors.request_get(request_id=request_id)).data)


class StaffAssignApi(StaffApi):
    class AssignInputSerializer(StrictSerializer):
        assignee = TextField(max_length=150, allow_null=True, trim_whitespace=False,
                             help_text="The username of an active reviewer or admin; null for nobody.")

    @extend_schema(operation_id="staff_request_assign", request=AssignInputSerializer,
                   responses={200: StaffRequestDetailSerializer, **errors(400, 401, 403, 404, 413)},
                   summary="Give the request to a staff member to work, or to nobody; audited (`assigned`, with who had it and who has it).",
                   description="Errors: `invalid_assignee` (no active reviewer or admin by that username). Giving it to whoever has it "
                               "already changes nothing.")
    def post(self, http_request, request_id):
        data = validated(self.AssignInputSerializer, http_request.data)
        services.request_assign(request_id=request_id, actor=staff_actor(http_request.user), assignee=data["assignee"])
        return Response(StaffRequestDetailSerializer(selectors.request_get(request_id=request_id)).data)


class StaffNoteApi(StaffApi):
    class NoteInputSerializer(StrictSerializer):
        note = ReasonField(max_length=services.NOTE_MAX_CHARS, help_text="For staff only: never shown to the person.")

    @extend_schema(operation_id="staff_request_note", request=NoteInputSerializer,
                   responses={200: StaffRequestDetailSerializer, **errors(400, 401, 403, 404, 413)},
                   summary="Add an internal note: an entry of the audit trail (`noted`), for staff only, never shown to the person.")
    def post(self, http_request, request_id):
        data = validated(self.NoteInputSerializer, http_request.data)
        services.request_note_add(request_id=request_id, actor=staff_actor(http_request.user), note=data["note"])
        return Response(StaffRequestDetailSerializer(selectors.request_get(request_id=request_id)).data)


class StaffBulkReviewApi(StaffApi):
    class BulkInputSerializer(StrictSerializer):
        action = serializers.ChoiceField(choices=services.BULK_ACTIONS)
        requests = serializers.ListField(child=StrictUUIDField(), min_length=1, max_length=services.BULK_MAX,
                                         help_text="The ids of the requests to approve or deny.")
        reason = ReasonField(max_length=2000, help_text="When denying, each person is emailed it; when approving, it is the "
                                                        "approval's note in each audit trail.")

    class OutcomeSerializer(serializers.Serializer):
        id = serializers.UUIDField(source="request_id")
        done = serializers.BooleanField()
        reason = serializers.CharField(help_text="Why it was refused; empty when done.")

    @extend_schema(operation_id="staff_request_bulk_review", request=BulkInputSerializer,
                   responses={200: OutcomeSerializer(many=True), **errors(400, 401, 403, 413)},
                   summary="Approve or deny several requests with one reason, each as if one at a time.",
                   description="Each request goes through the same rules, and gets the same audit entry, as `.../approve` (with "
                               "`note`) or `.../deny`; one refused (no longer pending review, a child's needing `authority`, no such "
                               "request) leaves the others done, and its outcome says why. Errors, which change nothing: "
                               "`invalid` (the field named).")
    def post(self, http_request):
        data = validated(self.BulkInputSerializer, http_request.data)
        outcomes = services.request_review_bulk(request_ids=data["requests"], action=data["action"],
                                                actor=staff_actor(http_request.user), reason=data["reason"])
        return Response(self.OutcomeSerializer(outcomes, many=True).data)
