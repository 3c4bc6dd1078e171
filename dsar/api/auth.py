"""Staff authentication: `Authorization: Token KEY`, keys stored only as their SHA-256."""

from __future__ import annotations

from rest_framework import authentication, exceptions, permissions

from ..staff import ROLE_ADMIN, ROLE_REVIEWER, staff_has_role, staff_token_user


class StaffTokenAuthentication(authentication.BaseAuthentication):
    keyword = "token"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        keyword, _, key = header.partition(" ")
        if keyword.lower() != self.keyword:
            return None
        user = staff_token_user(key.strip())
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return user, key

    def authenticate_header(self, request) -> str:
        return "Token"


class IsReviewer(permissions.BasePermission):
    """Reviewers act on requests; admins may too."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user) and staff_has_role(request.user, ROLE_REVIEWER)


class IsAdmin(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        return bool(request.user) and staff_has_role(request.user, ROLE_ADMIN)
