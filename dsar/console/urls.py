"""The staff console, under /console/ (contract §9)."""

from django.urls import path

from . import recipients, views

app_name = "console"
urlpatterns = [
    path("", views.queue, name="queue"),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    path("two-factor/setup", views.otp_setup, name="otp-setup"),
    path("two-factor/verify", views.otp_verify, name="otp-verify"),
    path("dashboard", views.dashboard, name="dashboard"),
    path("metrics", views.metrics, name="metrics"),
    path("bulk", views.queue_bulk, name="queue-bulk"),
    path("requests/<uuid:request_id>", views.request_detail, name="request"),
    path("requests/<uuid:request_id>/assign", views.request_assign, name="request-assign"),
    path("requests/<uuid:request_id>/notes", views.request_note, name="request-note"),
    path("requests/<uuid:request_id>/status", views.request_status, name="request-status"),
    path("requests/<uuid:request_id>/preview", views.request_preview, name="request-preview"),
    path("requests/<uuid:request_id>/review", views.request_review, name="request-review"),
    *(
        path(f"requests/<uuid:request_id>/{action}", views.request_act, {"action": action}, name=f"request-{action}")
        for action in views.ACTIONS
    ),
    path("requests/<uuid:request_id>/questions/<int:question_id>/file", views.question_file, name="question-file"),
    path("systems", views.systems, name="systems"),
    path("systems/<slug:name>/check", views.system_check, name="system-check"),
    path("manual", views.manual_tasks, name="manual-tasks"),
    path("manual/<int:task_id>", views.manual_task, name="manual-task"),
    path("recipients", recipients.recipient_notifications, name="recipient-notifications"),
    path("recipients/<uuid:notification_id>", recipients.recipient_notification, name="recipient-notification"),
    path("recipients/<uuid:notification_id>/retry", recipients.recipient_notification_retry, name="recipient-notification-retry"),
    path("staff", views.staff, name="staff"),
    path("staff/<int:user_id>/role", views.staff_role, name="staff-role"),
    path("staff/<int:user_id>/active", views.staff_active, name="staff-active"),
    path("staff/<int:user_id>/two-factor-reset", views.staff_otp_reset, name="staff-otp-reset"),
    path("staff/<int:user_id>/setup-code", views.staff_setup_code, name="staff-setup-code"),
    path("settings", views.workflow_settings, name="settings"),
    path("preferences", views.preferences, name="preferences"),
]
