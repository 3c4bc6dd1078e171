"""The staff API: the review queue, a request's tasks and audit trail, and the review actions."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import exports, selectors, services
from ..models import AuditEntry, ConnectorTask, Request, RequestType, Status
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


class AuditSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["at", "actor", "action", "from_status", "to_status", "note", "data"]


class StaffRequestSerializer(serializers.ModelSerializer):
    overdue = serializers.SerializerMethodField()

    class Meta:
        model = Request
        fields = [
            "id", "type", "status", "email", "categories", "jurisdiction", "created_at", "verified_at", "due_at",
            "extended_at", "completed_at", "overdue", "overdue_since", "referred_to", "failure_reason", "result", "erasure_check",
        ]

    def get_overdue(self, request: Request) -> bool:
        return selectors.request_overdue(request)


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
    audit = AuditSerializer(many=True)
    retention_finding = RetentionFindingSerializer(many=True, allow_null=True, help_text=(
        "What the export showed past the retention its category promises; null when nothing was, or before it completed."))

    class Meta(StaffRequestSerializer.Meta):
        fields = [*StaffRequestSerializer.Meta.fields, "tasks", "audit", "retention_finding"]


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
        summary="A request with its connector tasks and its audit trail.",
    )
    def get(self, http_request, request_id):
        return Response(StaffRequestDetailSerializer(selectors.request_get(request_id=request_id)).data)


class StaffApproveApi(StaffApi):
    class ApproveInputSerializer(StrictSerializer):
        note = TextField(required=False, allow_blank=True, max_length=2000, default="")

    @extend_schema(operation_id="staff_request_approve", request=ApproveInputSerializer, responses={200: StaffRequestDetailSerializer, **errors(400, 401, 403, 404, 409, 413)})
    def post(self, http_request, request_id):
        data = validated(self.ApproveInputSerializer, http_request.data)
        services.request_approve(request_id=request_id, actor=staff_actor(http_request.user), note=data["note"])
        return Response(StaffRequestDetailSerializer(selectors.request_get(request_id=request_id)).data)


class StaffDenyApi(StaffApi):
    class DenyInputSerializer(StrictSerializer):
        reason = ReasonField(max_length=2000)

    @extend_schema(operation_id="staff_request_deny", request=DenyInputSerializer, responses={200: StaffRequestDetailSerializer, **errors(400, 401, 403, 404, 409, 413)})
    def post(self, http_request, request_id):
        data = validated(self.DenyInputSerializer, http_request.data)
        services.request_deny(request_id=request_id, actor=staff_actor(http_request.user), reason=data["reason"])
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
