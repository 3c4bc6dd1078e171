"""The staff API: the review queue, a request's tasks and audit trail, and the review actions."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from ..models import (AuditEntry, Authority, ConnectorTask, DenialGround, QuestionPurpose, RecipientNotification, Request,
                      RequestQuestion, RequestType, Status)
from ..staff import staff_actor
from .auth import IsReviewer, StaffTokenAuthentication
from .common import ReasonField, StrictSerializer, TextField, errors, validated

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


class StaffRequestSerializer(serializers.ModelSerializer):
    overdue = serializers.SerializerMethodField()
    refusals = serializers.ListField(child=RefusalField(), read_only=True,
                                     help_text="The parts refused at approval; the rest was answered.")

    class Meta:
        model = Request
        fields = [
            "id", "type", "status", "email", "categories", "jurisdiction", "created_at", "verified_at", "due_at",
            "deadline_paused_at", "extended_at", "completed_at", "overdue", "overdue_since", "referred_to", "failure_reason",
            "result", "erasure_check", "refusals", "denial_ground", "minor_age", "minor_age_source", "authority_confirmed",
        ]

    def get_overdue(self, request: Request) -> bool:
        return selectors.request_overdue(request)


class StaffRequestDetailSerializer(StaffRequestSerializer):
    tasks = TaskSerializer(many=True)
    recipient_notifications = RecipientNotificationSerializer(many=True)
    audit = AuditSerializer(many=True)
    questions = QuestionSerializer(many=True)

    class Meta(StaffRequestSerializer.Meta):
        fields = [*StaffRequestSerializer.Meta.fields, "tasks", "recipient_notifications", "audit", "questions"]


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
        page = serializers.IntegerField(required=False, min_value=1)
        page_size = serializers.IntegerField(required=False, min_value=1, max_value=200)

    @extend_schema(
        operation_id="staff_request_list",
        parameters=[
            OpenApiParameter("status", str, enum=Status.values),
            OpenApiParameter("type", str, enum=RequestType.values),
            OpenApiParameter("overdue", bool),
        ],
        responses={200: StaffRequestSerializer(many=True), **errors(400, 401, 403, 404)},
        summary="The review queue, soonest due first.",
    )
    def get(self, http_request, *args, **kwargs):
        return super().get(http_request, *args, **kwargs)

    def get_queryset(self):
        filters = validated(self.QueueFilterSerializer, self.request.query_params.dict())
        return selectors.request_list(status=filters.get("status"), type=filters.get("type"), overdue=filters.get("overdue"))


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
`category_not_requested`, `invalid_system`, `duplicate_refusal`, `system_needed` (a system left is found by
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
