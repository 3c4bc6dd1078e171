"""`python -m benchmarks.email_cost file TAG COUNT` files COUNT requests through the product's
services, whose code emails then wait in the outbox (the workers are stopped);
`python -m benchmarks.email_cost send TAG` sends the code emails of TAG's requests as the mail
worker does (`notifications.emails_send`: batches of fifty, each under one transaction and one
relay session), here to the file backend's directory.

The intake benchmark runs `send` under callgrind for two tags, one a hundred emails longer than
the other after the same warm-up, and divides the difference in instructions by a hundred: what
the mail worker spends on one code email, whatever the machine's speed of the moment.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dsar.settings")
    import django

    django.setup()
    from django.db.models import Q

    from dsar import notifications, services
    from dsar.models import OutgoingEmail

    command, tag = sys.argv[1], sys.argv[2]
    prefix = f"mailcost.{tag}."
    if command == "file":
        for number in range(int(sys.argv[3])):
            services.request_create(type="access", email=f"{prefix}{number}@example.com")
        return 0
    waiting = OutgoingEmail.objects.filter(request__email__startswith=prefix).count()
    sent = notifications.emails_send(only=Q(request__email__startswith=prefix))
    if sent != waiting:
        raise SystemExit(f"{tag}: {sent} of {waiting} code emails were sent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
