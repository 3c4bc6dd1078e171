"""The data subject's API: file a request, verify the email, follow it, answer a question, cancel
it, download."""

from __future__ import annotations

import base64

from django.conf import settings
from django.http import FileResponse, Http404, StreamingHttpResponse
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from connectors.taxonomy import category_ids

from .. import exports, services
from ..portal import errors as portal_errors
from ..throttle import throttle_filing, throttle_verify
from ..models import QuestionPurpose, Request, RequestType, Status
from .common import CodeField, EmailField, ReasonField, StrictSerializer, TextField, errors, validated

BEARER = "bearer "


def bearer_token(http_request) -> str | None:
    header = http_request.META.get("HTTP_AUTHORIZATION", "")
    return header[len(BEARER):].strip() if header.lower().startswith(BEARER) else None


@extend_schema_field({"type": "array", "items": {"type": "string", "enum": category_ids()}, "maxItems": 100})
class CategoryIdsField(serializers.Field):
    """A list of at most a hundred category ids; which ids exist is for the service to say
    (services.request_create refuses the others). One field, not a list of choice fields: DRF
    builds a serializer's fields afresh for every call, and that list cost more to build than
    the rest of a filing's validation."""

    default_error_messages = {"invalid": gettext_lazy("Expected a list of at most 100 category ids.")}

    def to_internal_value(self, data):
        if not isinstance(data, list) or len(data) > 100 or not all(isinstance(item, str) for item in data):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


@extend_schema_field({"type": "string", "enum": sorted(services.time_zones())})
class TimeZoneField(serializers.CharField):
    """An IANA time zone name this machine knows. Not a ChoiceField: DRF copies a serializer's
    fields for every request it reads, and copying six hundred choices cost more than the rest of a
    filing (the web's instructions per filing doubled, benchmarks/README.md)."""

    default_error_messages = {"invalid_choice": gettext_lazy("time_zone must be an IANA time zone name, such as Europe/Berlin.")}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value not in services.time_zones():
            self.fail("invalid_choice")
        return value


class RequestCreateApi(APIView):
    class RequestCreateInputSerializer(StrictSerializer):
        type = serializers.ChoiceField(choices=RequestType.choices)
        email = EmailField(max_length=254)
        categories = CategoryIdsField(required=False)
        # Enums in the schema: an unknown zone or language is refused as any other wrong value.
        time_zone = TimeZoneField(required=False, help_text="The person's IANA time zone, such as Europe/Berlin: times they read are "
                                                            "given in it (UTC if left out).")
        language = serializers.ChoiceField(choices=[code for code, _ in settings.LANGUAGES], required=False,
                                           error_messages={"invalid_choice": gettext_lazy("language must be one of en, de.")},
                                           help_text="The language the person reads their emails, pages and export in (`en` if left out).")
        date_from = serializers.DateField(required=False, allow_null=True,
                                          help_text="Access only: the first day (YYYY-MM-DD, in the person's time zone) of the period to "
                                                    "gather data from; left out: from the beginning. Systems that cannot tell when their "
                                                    "data is from give all of it, and the export's report says which.")
        date_to = serializers.DateField(required=False, allow_null=True,
                                        help_text="Access only: the last day of that period, included; left out: up to now. Neither "
                                                  "day may be in the future, nor the first after the last.")
        part_size = serializers.ChoiceField(choices=["whole", *services.PART_SIZES], required=False,
                                            help_text="Access only: the export as one zip (`whole`, the default) or as several complete "
                                                      "zips of about this size each (1, 2 or 4 GB), each with its own download link.")

    class RequestCreatedSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        type = serializers.ChoiceField(choices=RequestType.choices)
        status = serializers.ChoiceField(choices=Status.choices)
        created_at = serializers.DateTimeField()
        due_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="request_create",
        request=RequestCreateInputSerializer,
        responses={201: RequestCreatedSerializer, **errors(400, 413, 429)},
        summary="File an access or deletion request; a code is emailed to the address.",
    )
    def post(self, http_request):
        data = validated(self.RequestCreateInputSerializer, http_request.data)
        throttle_filing(http_request, services.email_normalize(data["email"]))
        request = services.request_create(type=data["type"], email=data["email"], categories=data.get("categories"),
                                          time_zone=data.get("time_zone"), language=data.get("language"), date_from=data.get("date_from"),
                                          date_to=data.get("date_to"), part_size=services.PART_SIZES.get(data.get("part_size")))
        # The documented shape, written out: filing is the hottest path, and a serializer would double
        # the cost of the answer (DRF's JSON encoder writes datetimes exactly as its DateTimeField does).
        body = {"id": str(request.id), "type": request.type, "status": request.status,
                "created_at": request.created_at, "due_at": request.due_at}
        return Response(body, status=status.HTTP_201_CREATED)


class RequestVerifyApi(APIView):
    class RequestVerifyInputSerializer(StrictSerializer):
        code = CodeField(r"^\d{6,8}$", max_length=8, error_messages={"invalid": gettext_lazy("A code is 6 to 8 digits.")})

    class RequestVerifiedSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Status.choices)
        token = serializers.CharField()

    @extend_schema(
        operation_id="request_verify",
        request=RequestVerifyInputSerializer,
        responses={200: RequestVerifiedSerializer, **errors(400, 404, 409, 413, 429, 503)},
        summary="Prove ownership of the email with the emailed code; returns the request's bearer token.",
    )
    def post(self, http_request, request_id):
        data = validated(self.RequestVerifyInputSerializer, http_request.data)
        throttle_verify(http_request)
        request, token = services.request_verify(request_id=request_id, code=data["code"])
        return Response({"status": request.status, "token": token})


class QuestionAskedSerializer(serializers.Serializer):
    """The question staff asked that waits for the person's answer."""

    text = serializers.CharField()
    purpose = serializers.ChoiceField(choices=QuestionPurpose.choices)
    asked_at = serializers.DateTimeField()


def _downloadable(request: Request):
    """The request's export, when the person can download it."""
    export = getattr(request, "export", None)
    if request.status != Status.COMPLETED or export is None or export.deleted_at is not None or export.released_at is None:
        return None
    return export


class RequestDetailSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    type = serializers.ChoiceField(choices=RequestType.choices)
    status = serializers.ChoiceField(choices=Status.choices)
    categories = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    due_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    download_url = serializers.SerializerMethodField()
    result = serializers.JSONField(allow_null=True)
    question = serializers.SerializerMethodField(help_text="The question waiting for the person's answer, while the request is "
                                                           "awaiting_subject.")

    date_from = serializers.DateField(allow_null=True, help_text="The first day of the period asked for, if any.")
    date_to = serializers.DateField(allow_null=True, help_text="The last day of the period asked for, if any.")
    download_parts = serializers.SerializerMethodField(help_text="Each zip of the export with its own signed link, once it can be "
                                                                 "downloaded (one, unless a part size was chosen; the first is "
                                                                 "`download_url`).")

    def get_download_url(self, request: Request) -> str | None:
        export = _downloadable(request)
        return exports.download_url(export) if export else None

    @extend_schema_field({"type": "array", "nullable": True, "items": {"type": "object", "required": ["part", "bytes", "download_url"],
                          "properties": {"part": {"type": "integer"}, "bytes": {"type": "integer"}, "download_url": {"type": "string"}}}})
    def get_download_parts(self, request: Request) -> list[dict] | None:
        export = _downloadable(request)
        if export is None:
            return None
        return [{"part": part.number, "bytes": part.bytes, "download_url": url} for part, url in exports.download_urls(export)]

    @extend_schema_field(QuestionAskedSerializer(allow_null=True))
    def get_question(self, request: Request) -> dict | None:
        asked = request.questions.filter(answered_at__isnull=True).first() if request.status == Status.AWAITING_SUBJECT else None
        return QuestionAskedSerializer(asked).data if asked else None


class RequestGetApi(APIView):
    @extend_schema(
        operation_id="request_get",
        responses={200: RequestDetailSerializer, **errors(404)},
        summary="The request, for the holder of its bearer token only.",
    )
    def get(self, http_request, request_id):
        request = services.request_get_for_subject(request_id=request_id, token=bearer_token(http_request))
        return Response(RequestDetailSerializer(request).data)


class RequestCancelApi(APIView):
    @extend_schema(
        operation_id="request_cancel",
        request=None,
        responses={200: RequestDetailSerializer, **errors(404, 409)},
        summary="Withdraw a request that is not yet being processed.",
    )
    def post(self, http_request, request_id):
        request = services.request_get_for_subject(request_id=request_id, token=bearer_token(http_request))
        request = services.request_cancel(request_id=request.id)
        return Response(RequestDetailSerializer(request).data)


class RequestAnswerApi(APIView):
    parser_classes = [MultiPartParser]

    class RequestAnswerInputSerializer(StrictSerializer):
        answer = ReasonField(max_length=services.ANSWER_MAX_CHARS)
        file = serializers.FileField(required=False, help_text="At most one PDF, PNG or JPEG file (DSAR_ANSWER_FILE_MAX_BYTES), "
                                                               "its kind read from its bytes.")

    @extend_schema(
        operation_id="request_answer",
        request={"multipart/form-data": RequestAnswerInputSerializer},
        responses={200: RequestDetailSerializer, **errors(400, 404, 409, 413, 415)},
        summary="Answer the question staff asked (awaiting_subject -> pending_review), with text and optionally one file.",
    )
    def post(self, http_request, request_id):
        request = services.request_get_for_subject(request_id=request_id, token=bearer_token(http_request))
        data = validated(self.RequestAnswerInputSerializer, http_request.data)
        upload = data.get("file")
        # One byte past the limit is enough for the service to refuse a file too large.
        file = upload.read(settings.DSAR_ANSWER_FILE_MAX_BYTES + 1) if upload else None
        request = services.request_answer(request_id=request.id, answer=data["answer"], file=file)
        return Response(RequestDetailSerializer(request).data)


class EncryptedDownloadSerializer(StrictSerializer):
    passphrase = TextField(min_length=12, max_length=200, trim_whitespace=False)


class RequestDownloadApi(APIView):
    @extend_schema(
        operation_id="request_download",
        responses={(200, "application/zip"): OpenApiResponse(description="The export archive, its SHA-256 in the `Repr-Digest` header (RFC 9530)."),
                   **errors(404)},
        summary="The export archive, through a signed link that expires with the export.",
    )
    def get(self, http_request, request_id, signature):
        export = exports.export_part_for_download(request_id=request_id, signature=signature)
        if export is None:
            if portal_errors.prefers_html(http_request):
                return portal_errors.download_unavailable(http_request, request_id)
            raise Http404
        handle = exports.default_storage.open(export.path, "rb")
        response = FileResponse(handle, content_type="application/zip", as_attachment=True, filename=export.filename)
        response["Content-Length"] = str(export.bytes)
        # The zip's SHA-256 (RFC 9530), for a client to check what it saved is what we wrote.
        response["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(export.sha256)).decode()}:"
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(
        operation_id="request_download_encrypted",
        request=EncryptedDownloadSerializer,
        responses={(200, "application/zip"): OpenApiResponse(description="The archive, AES-256 encrypted with the passphrase."), **errors(400, 404, 413)},
        summary="The export archive encrypted with a passphrase the person chooses (never stored).",
    )
    def post(self, http_request, request_id, signature):
        data = validated(EncryptedDownloadSerializer, http_request.data)
        export = exports.export_part_for_download(request_id=request_id, signature=signature)
        if export is None:
            raise Http404
        response = StreamingHttpResponse(exports.archive_encrypted(export, data["passphrase"]), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{export.filename.removesuffix(".zip")}-encrypted.zip"'
        response["Cache-Control"] = "no-store"
        return response
