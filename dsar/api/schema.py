"""How the OpenAPI document describes our two kinds of credentials."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class StaffTokenScheme(OpenApiAuthenticationExtension):
    target_class = "dsar.api.auth.StaffTokenAuthentication"
    name = "staffToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token KEY`, from `python manage.py staff_token USERNAME`.",
        }


def forbid_unknown_request_fields(result, generator, request, public):
    """Request bodies refuse undeclared fields (StrictSerializer); say so in the document."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False
    return result
