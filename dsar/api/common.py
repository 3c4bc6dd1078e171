"""Pieces every API class shares: strict input, the error shape, documented error answers, and
content negotiation that answers rather than refuses."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.exceptions import NotAcceptable, ParseError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser


class NestingSafeJSONParser(JSONParser):
    """DRF's JSON parser, refusing a document nested deeper than Python's decoder recurses (a few
    thousand brackets) as malformed: DRF catches the decoder's ValueError but not its RecursionError,
    which became a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None


class StrictSerializer(serializers.Serializer):
    """Input validation that refuses fields it does not declare, so a typo is an error, not a
    silent default."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: [_("Unknown field.")] for name in unknown})
        return super().to_internal_value(data)


class _StringsOnly:
    """Takes only JSON strings: a number or a list is the wrong type, not text to coerce."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class TextField(_StringsOnly, serializers.CharField):
    """Free text. PostgreSQL cannot store NUL, so it is refused, and the schema says so (one
    regular expression per field, since an OpenAPI schema carries one pattern)."""

    pattern, message = r"^[^\x00]*$", gettext_lazy("Null characters are not allowed.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.append(RegexValidator(self.pattern, self.message))


class ReasonField(TextField):
    """Text a person will read (a denial or extension reason): no NUL, and something visible."""

    pattern = r"^[^\x00]*[^\s\x00-\x1f\x7f-\x9f][^\x00]*$"
    message = gettext_lazy("A reason is required, and may not contain null characters.")


class CodeField(_StringsOnly, serializers.RegexField):
    pass


class EmailField(_StringsOnly, serializers.EmailField):
    pass


class AnswerDespiteAccept(DefaultContentNegotiation):
    """Honour an Accept header the API can satisfy; answer one it cannot in the API's own format.

    The API has one representation of each answer (JSON, or a download's zip), and DRF's default
    refuses anything else with 406: `Accept: application/zip` on the download link, or a browser's
    `text/html`. RFC 9110 (section 12.5.1) lets a server disregard the header instead, which serves
    such a client; a `?format=` that names no renderer is still a 404.

    A caller that accepts anything (no Accept header, or `*/*`) and names no format gets the first
    renderer straight away, as the full negotiation would answer it: parsing the header and the
    query string for that answer was a tenth of what the API spends outside the view.
    """

    ANYTHING = ("*/*", None)

    def select_renderer(self, request, renderers, format_suffix=None):
        if request.META.get("HTTP_ACCEPT") in self.ANYTHING and not format_suffix and not request.META.get("QUERY_STRING"):
            return renderers[0], renderers[0].media_type
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="A stable code, e.g. invalid_code, illegal_transition.")
    detail = serializers.JSONField(help_text="A sentence for people, or per-field messages.")


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """The documented error answers of an operation."""
    return {status: OpenApiResponse(ErrorSerializer) for status in statuses}


def validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
