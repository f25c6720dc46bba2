"""API tokens: every route that writes or administers needs one; reads too unless read_open; the Label
Studio routes need a token or their own HTTP Basic credentials whenever either is configured.

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
    return _token_in(request.headers.get("authorization", ""), request.headers.get("x-api-token"))


def _token_in(authorization: str, x_api_token: str | None) -> str | None:
    scheme, _, value = authorization.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme in ("bearer", "token") and value:
        return value
    if scheme == "basic" and value:
        try:
            user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or user
    return x_api_token or None


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


def _basic_matches(authorization: str, user: str, password: str) -> bool:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        got_user, _, got_pass = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        got_user = got_pass = ""
    # Both compared, always: the time taken does not tell which one was wrong.
    return hmac.compare_digest(got_user.encode(), user.encode()) & hmac.compare_digest(got_pass.encode(),
                                                                                      password.encode())


def labelstudio_needs_credentials(settings) -> bool:
    return settings.labelstudio_basic_user is not None or bool(settings.api_tokens)


def labelstudio_accepts(settings, headers) -> bool:
    """Would these request headers pass the LS routes' check? (Also asked of LS's webhook's own headers.)"""
    if not labelstudio_needs_credentials(settings):
        return True
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    authorization = lower.get("authorization", "")
    if settings.labelstudio_basic_user is not None and _basic_matches(authorization, settings.labelstudio_basic_user,
                                                                      settings.labelstudio_basic_pass):
        return True
    token = _token_in(authorization, lower.get("x-api-token")) if settings.api_tokens else None
    return token is not None and token_matches(token, settings.api_tokens)


def require_labelstudio(request: Request) -> None:
    """Every LS route (they fetch the project's photos with its token, store corrections, queue retrains):
    - labelstudio_basic_user/pass set: that HTTP Basic pair (LS: auth_method BASIC_AUTH), or an API token;
    - api_tokens set: an API token as Basic's password (what LS sends), Bearer/Token, or X-API-Token;
    - neither: the rule of writes (open only while the service listens on loopback)."""
    s = request.app.state.settings
    if labelstudio_accepts(s, request.headers) and labelstudio_needs_credentials(s):
        return
    if not labelstudio_needs_credentials(s):
        if s.loopback_open and s.host in LOOPBACK:
            return
        raise HTTPException(403, f"Label Studio routes are disabled: no api_tokens are configured and the service "
                                 f"listens on {s.host}; set TAILOR_API_TOKENS (Label Studio sends one as the "
                                 "password of Basic auth)")
    raise HTTPException(401, "Label Studio routes need credentials: register the backend with Basic auth (user any, "
                             "password an API token, or TAILOR_LABELSTUDIO_BASIC_USER/_PASS), and give its webhook "
                             "an Authorization or X-API-Token header",
                        headers={"WWW-Authenticate": 'Basic realm="tailor-labelstudio"'})
