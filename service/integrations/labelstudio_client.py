"""Reaching Label Studio from the backend: which LS instance and token each project uses, and fetches from it.

labelstudio_url/labelstudio_token (settings) win over the hostname/access_token LS sends in /setup; an LS
host learnt from /setup must be in allowed_url_hosts. Tokens go only to the LS origin, never to other hosts.
"""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

import httpx

from service.drafting.errors import PhotoRejected
from service.drafting.fetch import fetch_url, host_allowed
from service.integrations.labelstudio_status import Activity

__all__ = ["Connection", "Connections", "ImageUnavailable"]
_ACCESS_TTL_S = 240.0  # LS access JWTs live 5 minutes; refresh a little before


class ImageUnavailable(ValueError):
    """A task's image cannot be fetched; the task gets an empty prediction with this message."""


@dataclass(frozen=True)
class Connection:
    base_url: str | None       # e.g. http://127.0.0.1:8080 (no trailing slash)
    token: str | None
    trusted_host: str | None   # the host of settings.labelstudio_url: allowed without allowed_url_hosts


def _origin(url: str) -> tuple[str, str, int | None]:
    u = httpx.URL(url)
    return u.scheme, (u.host or "").lower(), u.port


class Connections:
    """Per-project memory of what LS sent in /setup (hostname, token, label config) and fetches with it.

    In memory only: LS calls /setup again before every prediction batch, and settings cover restarts.
    """

    def __init__(self, settings):
        self.settings = settings
        self._projects: dict[int, dict] = {}
        self._lock = threading.Lock()
        self._access: dict[tuple[str, str], tuple[str, float]] = {}
        # Annotation webhooks are stored one at a time, in arrival order: CREATED is never overwritten by
        # an older UPDATED finishing late.
        self.store_lock = asyncio.Lock()
        self.activity = Activity()

    def remember(self, project: int | None, hostname=None, access_token=None, schema=None) -> None:
        if project is None:
            return
        entry = {}
        if isinstance(hostname, str) and hostname.lower().startswith(("http://", "https://")):
            entry["hostname"] = hostname.rstrip("/")
        if isinstance(access_token, str) and access_token.strip():
            entry["token"] = access_token.strip()
        if isinstance(schema, str) and schema.strip():
            entry["schema"] = schema
        with self._lock:
            known = self._projects.setdefault(project, {})
            if "hostname" in entry and entry["hostname"] != known.get("hostname") and "token" not in entry:
                # A token learnt for one LS host is never sent to another one named later.
                known.pop("token", None)
            known.update(entry)

    def schema(self, project: int | None) -> str | None:
        with self._lock:
            return self._projects.get(project, {}).get("schema")

    def resolve(self, project: int | None) -> Connection:
        s = self.settings
        with self._lock:
            known = dict(self._projects.get(project, {}))
        trusted = httpx.URL(s.labelstudio_url).host.lower() if s.labelstudio_url else None
        return Connection(s.labelstudio_url or known.get("hostname"), s.labelstudio_token or known.get("token"),
                          trusted)

    def may_fetch(self, url: str, conn: Connection) -> bool:
        """Whether this LS URL's host passes the check every fetch from LS makes (asked by /setup)."""
        try:
            self._check_host(url, conn)
        except ImageUnavailable:
            return False
        return True

    def _check_host(self, url: str, conn: Connection) -> None:
        host = (httpx.URL(url).host or "").lower()
        # The same rule as every URL fetch: an allowed entry may name a port (a bare host: the scheme's port).
        if host != conn.trusted_host and not host_allowed(httpx.URL(url), self.settings):
            raise ImageUnavailable(f"Label Studio host {host!r} is neither labelstudio_url's host nor in "
                                   f"allowed_url_hosts {self.settings.allowed_url_hosts}")

    async def headers(self, conn: Connection) -> dict[str, str]:
        """Authorization for LS: a legacy token as `Token T`; a personal access token (a JWT) is exchanged."""
        token = conn.token
        if not token:
            return {}
        if token.count(".") != 2:
            return {"Authorization": f"Token {token}"}
        key = (conn.base_url or "", token)
        cached = self._access.get(key)
        if cached and cached[1] > time.monotonic():
            return {"Authorization": f"Bearer {cached[0]}"}
        url = f"{conn.base_url}/api/token/refresh"
        self._check_host(url, conn)
        try:
            async with httpx.AsyncClient(timeout=self.settings.url_timeout_s, trust_env=False) as client:
                resp = await client.post(url, json={"refresh": token})
            access = resp.json().get("access") if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            raise ImageUnavailable(f"{url}: {type(exc).__name__}: {exc}") from None
        if not isinstance(access, str):
            raise ImageUnavailable(f"Label Studio refused the personal access token (HTTP {resp.status_code})")
        self._access[key] = (access, time.monotonic() + _ACCESS_TTL_S)
        return {"Authorization": f"Bearer {access}"}

    def absolute(self, ref: str, conn: Connection) -> str:
        if ref.startswith("/"):
            if not conn.base_url:
                raise ImageUnavailable(f"{ref[:120]!r} is a Label Studio path but no LS URL is known: set "
                                       "labelstudio_url, or let LS connect (it sends its hostname in /setup)")
            return conn.base_url + ref
        if ref.lower().startswith(("http://", "https://")):
            return ref
        raise ImageUnavailable(f"image reference {ref[:120]!r} is neither an LS path (/data/...) nor an http(s) URL "
                               "(cloud storage URIs are resolved by LS, not fetched here)")

    async def fetch_image(self, ref: str, conn: Connection) -> bytes:
        """The bytes of a task's image: LS paths and LS URLs with the token, other allowed hosts without."""
        url = self.absolute(ref, conn)
        ls_origin = conn.base_url is not None and _origin(url) == _origin(conn.base_url)
        if ls_origin:
            self._check_host(url, conn)
        headers = await self.headers(conn) if ls_origin else None
        extra = (conn.trusted_host,) if ls_origin and conn.trusted_host else ()
        try:
            return await fetch_url(url, self.settings, headers=headers, extra_hosts=extra)
        except PhotoRejected as exc:
            hint = " (is the LS token right?)" if "HTTP 401" in str(exc) else ""
            raise ImageUnavailable(f"{url}: {exc}{hint}") from None

    async def call(self, method: str, path: str, conn: Connection, json=None,
                   timeout: float | None = None) -> httpx.Response:
        """An LS API call (e.g. GET /api/webhooks/?project=3) with the token; ValueError when LS is not reached."""
        if not conn.base_url:
            raise ImageUnavailable("no Label Studio URL known")
        url = conn.base_url + path
        self._check_host(url, conn)
        headers = await self.headers(conn)
        try:
            async with httpx.AsyncClient(timeout=timeout or self.settings.url_timeout_s, trust_env=False) as client:
                return await client.request(method, url, headers=headers, json=json)
        except httpx.HTTPError as exc:
            raise ImageUnavailable(f"{url}: {type(exc).__name__}: {exc}") from None

    async def get_json(self, path: str, conn: Connection) -> dict:
        """GET an LS API path (e.g. /api/predictions/5) with the token; ValueError on any failure."""
        resp = await self.call("GET", path, conn)
        try:
            body = resp.json() if resp.status_code == 200 else None
        except ValueError as exc:
            raise ImageUnavailable(f"{resp.request.url}: {type(exc).__name__}: {exc}") from None
        if not isinstance(body, dict):
            raise ImageUnavailable(f"{resp.request.url} answered HTTP {resp.status_code}")
        return body
