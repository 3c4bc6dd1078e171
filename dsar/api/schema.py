"""How the OpenAPI document describes our credentials, and what any operation may answer."""

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


def _operations(result):
    """Every operation of the document."""
    for operations in result.get("paths", {}).values():
        yield from operations.values()


def _error_answer(description: str) -> dict:
    return {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}, "description": description}


def document_malformed_request_answer(result, generator, request, public):
    """Any call can be malformed before a view sees it (a Host the server does not serve, a
    Content-Length that is not a number): every operation may answer 400 in the error shape."""
    for operation in _operations(result):
        operation.setdefault("responses", {}).setdefault("400", _error_answer("The request is malformed."))
    return result


HTTPS_REQUIRED = "Behind TLS, a call made over plain HTTP is refused (`https_required`), never redirected to HTTPS."


def document_https_required_answer(result, generator, request, public):
    """Behind TLS any call over plain HTTP is refused with 403 before a view sees it
    (dsar/middleware.py, HttpsOnlyApiMiddleware): every operation may answer 403 in the error shape;
    a staff operation, which already may (`forbidden`), says both."""
    for operation in _operations(result):
        responses = operation.setdefault("responses", {})
        if "403" in responses:
            responses["403"]["description"] = f"The caller may not do this (`forbidden`). {HTTPS_REQUIRED}"
        else:
            responses["403"] = _error_answer(HTTPS_REQUIRED)
    return result
