from csp.decorators import csp_update
from django.urls import include, path
from django.views.i18n import set_language
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from . import branding
from .api import staff, subject
from .health import healthz, ready

api = [
    path("requests", subject.RequestCreateApi.as_view(), name="request-create"),
    path("requests/<uuid:request_id>", subject.RequestGetApi.as_view(), name="request-get"),
    path("requests/<uuid:request_id>/verify", subject.RequestVerifyApi.as_view(), name="request-verify"),
    path("requests/<uuid:request_id>/cancel", subject.RequestCancelApi.as_view(), name="request-cancel"),
    path("requests/<uuid:request_id>/answer", subject.RequestAnswerApi.as_view(), name="request-answer"),
    path("requests/<uuid:request_id>/download/<str:signature>", subject.RequestDownloadApi.as_view(), name="request-download"),
    path("staff/requests", staff.StaffRequestListApi.as_view(), name="staff-request-list"),
    path("staff/requests/bulk", staff.StaffBulkReviewApi.as_view(), name="staff-request-bulk-review"),
    path("staff/requests/<uuid:request_id>", staff.StaffRequestGetApi.as_view(), name="staff-request-get"),
    path("staff/requests/<uuid:request_id>/assign", staff.StaffAssignApi.as_view(), name="staff-request-assign"),
    path("staff/requests/<uuid:request_id>/notes", staff.StaffNoteApi.as_view(), name="staff-request-note"),
    path("staff/requests/<uuid:request_id>/approve", staff.StaffApproveApi.as_view(), name="staff-request-approve"),
    path("staff/requests/<uuid:request_id>/deny", staff.StaffDenyApi.as_view(), name="staff-request-deny"),
    path("staff/requests/<uuid:request_id>/extend", staff.StaffExtendApi.as_view(), name="staff-request-extend"),
    path("staff/requests/<uuid:request_id>/retry", staff.StaffRetryApi.as_view(), name="staff-request-retry"),
    path("staff/requests/<uuid:request_id>/ask", staff.StaffAskApi.as_view(), name="staff-request-ask"),
    path("staff/requests/<uuid:request_id>/review", staff.StaffReviewApi.as_view(), name="staff-request-review"),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("brand.css", branding.brand_css, name="brand-css"),
    path("brand/logo", branding.brand_logo, name="brand-logo"),
    path("healthz/ready", ready, name="ready"),
    path("api/v1/", include(api)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Redoc injects its own styles and runs a web worker from a blob: the one page that needs more.
    path("api/docs/", csp_update({"style-src": ["'unsafe-inline'"], "worker-src": ["blob:"]})(
        SpectacularRedocView.as_view(url_name="schema")), name="api-docs"),
    path("console/", include("dsar.console.urls")),
    # The language switch: Django's own view, which keeps the choice in a cookie.
    path("language", set_language, name="set-language"),
    path("", include("dsar.portal.urls")),
]

handler400 = "dsar.portal.errors.bad_request"
handler404 = "dsar.portal.errors.page_not_found"
handler500 = "dsar.portal.errors.server_error"
