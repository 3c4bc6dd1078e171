"""What of a request was referred to the organisation that manages the person's account, whose data
it is (GDPR Art. 28: the company holds it on the organisation's behalf), as the request's result
carries it. A referral is no refusal: that data is for the organisation to answer, and the person is
told how to reach it."""

from __future__ import annotations

from typing import Any

from ..models import Request


def referral_as_dict(request: Request) -> dict[str, Any]:
    """The referral as a result carries it: the organisation, its contact (None when the systems
    hold none) and the systems left to it, each with the requested categories it can hold."""
    return {"referred_to": request.referred_to, "contact": request.referred_contact or None, "systems": request.referred_systems}

