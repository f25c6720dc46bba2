"""API tokens: every route that writes or administers needs one; reads too unless read_open; and the
Label Studio routes' own HTTP Basic credentials when they are set.

A token comes as `Authorization: Bearer T`, `X-API-Token: T`, or the password of HTTP Basic (what
Label Studio sends to an ML backend). Tokens are compared in constant time against every configured one.
"""
from __future__ import annotations

import base64
import binascii
import hmac

from fastapi import HTTPException, Request

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme in ("bearer", "token") and value:
        return value
    if scheme == "basic" and value:
        try:
            user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or user
    return request.headers.get("x-api-token") or None


def token_matches(token: str, tokens: list[str]) -> bool:
    given = token.encode("utf-8")
    ok = False
    for t in tokens:  # no early exit: the time taken does not tell which (or whether one) matched
        ok |= hmac.compare_digest(given, t.encode("utf-8"))
    return ok


def check_access(request: Request, write: bool, data: bool = False) -> None:
    """Raise 401 (no token) or 403 (wrong token, or writes closed) unless the request may proceed.

    `data`: a read of photos, masks or a whole package, which read_open never opens."""
    settings = request.app.state.settings
    if not write and not data and settings.read_open:
        return
    tokens = settings.api_tokens
    if not tokens:
        # No tokens: the safe default is open only to this machine (a service bound to loopback).
        if settings.loopback_open and settings.host in LOOPBACK:
            return
        raise HTTPException(403, f"{'writes' if write else 'reads'} are disabled: no api_tokens are configured and "
                                 f"the service listens on {settings.host}; set TAILOR_API_TOKENS")
    token = presented_token(request)
    if token is None:
        raise HTTPException(401, "this route needs an API token (Authorization: Bearer TOKEN or X-API-Token)",
                            headers={"WWW-Authenticate": 'Bearer realm="tailor"'})
    if not token_matches(token, tokens):
        raise HTTPException(403, "the API token is not valid")


def require_write(request: Request) -> None:
    check_access(request, write=True)


def require_read(request: Request) -> None:
    check_access(request, write=False)


def require_data(request: Request) -> None:
    check_access(request, write=False, data=True)


def require_labelstudio(request: Request) -> None:
    """HTTP Basic on every LS route when labelstudio_basic_user/pass are set (LS: auth_method BASIC_AUTH)."""
    s = request.app.state.settings
    if s.labelstudio_basic_user is None:
        return
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    ok = False
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        # Both compared, always: the time taken does not tell which one was wrong.
        ok = hmac.compare_digest(user.encode(), s.labelstudio_basic_user.encode()) \
            & hmac.compare_digest(password.encode(), s.labelstudio_basic_pass.encode())
    if not ok:
        raise HTTPException(401, "Label Studio routes need HTTP Basic auth (register the backend with auth_method "
                                 "BASIC_AUTH)", headers={"WWW-Authenticate": 'Basic realm="tailor-labelstudio"'})
