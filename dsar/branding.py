"""The company as people see it: its name, accent colour, logo, contact address and privacy
statement (DSAR_BRAND, validated in dsar/config.py). Templates get it as `brand`; the colour reaches
the style sheets through /brand.css, and the logo is served from its file, so that the site's
Content-Security-Policy (styles and images from the site itself only) needs no exception."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

from .config import LOGO_TYPES

DARKER = 0.6  # the hover and header shade: each channel of the accent colour times this


def darker(colour: str, factor: float = DARKER) -> str:
    """`colour` (#rrggbb) with each channel scaled by `factor`."""
    return "#" + "".join(f"{round(int(colour[i:i + 2], 16) * factor):02x}" for i in (1, 3, 5))


def brand(request: HttpRequest) -> dict:
    """The context processor: `brand` with the logo's URL when there is one."""
    configured = settings.DSAR_BRAND
    return {"brand": {**configured, "logo_url": reverse("brand-logo") if configured["logo"] else None}}


@require_safe
@cache_control(max_age=3600, public=True)
def brand_css(request: HttpRequest) -> HttpResponse:
    colour = settings.DSAR_BRAND["colour"]
    return HttpResponse(f":root {{ --brand: {colour}; --brand-dark: {darker(colour)}; }}\n", content_type="text/css; charset=utf-8")


@require_safe
@cache_control(max_age=3600, public=True)
def brand_logo(request: HttpRequest) -> FileResponse:
    logo: Path | None = settings.DSAR_BRAND["logo"]
    if logo is None:
        raise Http404("no logo is configured")
    return FileResponse(logo.open("rb"), content_type=LOGO_TYPES[logo.suffix.lower()])
