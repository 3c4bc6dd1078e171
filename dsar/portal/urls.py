"""The public request portal, at the site root."""

from django.urls import include, path

from . import export_view, views

app_name = "portal"
urlpatterns = [
    path("", views.start, name="start"),
    path("request/", views.request_new, name="request-new"),
    path("request/confirm", views.request_confirm, name="request-confirm"),
    path("requests/<uuid:request_id>", views.request_status, name="request-status"),
    path("requests/<uuid:request_id>/verify", views.request_verify, name="request-verify"),
    path("requests/<uuid:request_id>/resend", views.request_resend, name="request-resend"),
    path("requests/<uuid:request_id>/cancel", views.request_cancel, name="request-cancel"),
    path("requests/<uuid:request_id>/answer", views.request_answer, name="request-answer"),
    path("requests/<uuid:request_id>/download-encrypted", views.request_download_encrypted, name="request-download-encrypted"),
    path("requests/<uuid:request_id>/download-unavailable", views.download_unavailable, name="download-unavailable"),
    path("requests/<uuid:request_id>/export/", include(export_view.urlpatterns)),
]
