"""What of a request was referred to the organisation that manages the person's account, whose data
it is (GDPR Art. 28: the company holds it on the organisation's behalf), as the request's result
carries it and in the words the person reads: the email at verification, the request's page, the
export's report and the deletion receipt. A referral is no refusal: that data is for the
organisation to answer, and the person is told how to reach it."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext

from connectors.taxonomy import category_label

from ..models import Request


def referral_as_dict(request: Request) -> dict[str, Any]:
    """The referral as a result carries it: the organisation, its contact (None when the systems
    hold none) and the systems left to it, each with the requested categories it can hold."""
    return {"referred_to": request.referred_to, "contact": request.referred_contact or None, "systems": request.referred_systems}


def referral_in_words(request: Request) -> dict[str, Any] | None:
    """The referral as the person reads it: the organisation, its contact, and each system left to
    it with the labels of its categories, never an id; None when nothing was referred."""
    if not request.referred_systems:
        return None
    return {"organization": request.referred_to, "contact": request.referred_contact,
            # Translators: %(system)s is the company's own name for one of its systems, such as "payments".
            "parts": [{"part": gettext("Our %(system)s system") % {"system": part["system"]},
                       "categories": ", ".join(category_label(category) for category in part["categories"])}
                      for part in request.referred_systems]}
