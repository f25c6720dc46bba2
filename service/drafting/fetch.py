"""A photo by URL: fetched only from allowed hosts, redirects only within the host, size capped while streaming.

The predict routes (image_url) and the Label Studio backend (task images) fetch through here; failures are
the drafting errors (HostNotAllowed, PhotoTooLarge, PhotoUnavailable), never HTTP answers.
"""
from __future__ import annotations

import httpx

from service.drafting.errors import HostNotAllowed, PhotoTooLarge, PhotoUnavailable
from service.settings import Settings


def _check_url(url: httpx.URL, settings: Settings, original_host: str | None = None,
               extra_hosts: tuple[str, ...] = ()) -> None:
    if url.scheme not in ("http", "https"):
        raise PhotoUnavailable(f"image_url must be http or https, got {url.scheme or 'no scheme'!r}")
    host = (url.host or "").lower()
    if original_host is not None and host != original_host:
        raise HostNotAllowed(f"image_url redirected from {original_host!r} to another host {host!r}; refused")
    if host not in settings.allowed_url_hosts and host not in extra_hosts:
        raise HostNotAllowed(f"image_url host {host!r} is not allowed "
                             f"(allowed_url_hosts: {settings.allowed_url_hosts})")


def _too_large(size: int, limit: int) -> PhotoTooLarge:
    return PhotoTooLarge(f"image_url content is {size} bytes, above the limit of {limit} bytes (max_upload_bytes)")


async def fetch_url(raw_url: str, settings: Settings, *, headers: dict[str, str] | None = None,
                    extra_hosts: tuple[str, ...] = ()) -> bytes:
    """GET a photo from an allowed host.

    headers (e.g. a Label Studio token) go only to that host; extra_hosts are allowed besides
    allowed_url_hosts (the configured Label Studio host).
    """
    if not settings.allowed_url_hosts and not extra_hosts:
        raise HostNotAllowed("image_url is disabled on this server (allowed_url_hosts is empty); "
                             "upload the image or send image_base64")
    try:
        url = httpx.URL(raw_url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise PhotoUnavailable(f"image_url is not a valid URL ({exc})") from None
    _check_url(url, settings, extra_hosts=extra_hosts)
    host, limit = (url.host or "").lower(), settings.max_upload_bytes
    # trust_env=False: proxies from the environment must not change where a request goes.
    async with httpx.AsyncClient(follow_redirects=False, timeout=settings.url_timeout_s, trust_env=False) as client:
        try:
            for _ in range(settings.max_redirects + 1):
                async with client.stream("GET", url, headers=headers) as resp:
                    if resp.is_redirect:
                        url = url.join(resp.headers.get("location", ""))
                        _check_url(url, settings, original_host=host, extra_hosts=extra_hosts)
                        continue
                    if resp.status_code != 200:
                        raise PhotoUnavailable(f"image_url answered HTTP {resp.status_code}")
                    declared = resp.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > limit:
                        raise _too_large(int(declared), limit)
                    buf = bytearray()
                    async for chunk in resp.aiter_bytes():
                        buf += chunk
                        if len(buf) > limit:  # stop reading at once; do not trust content-length
                            raise _too_large(len(buf), limit)
                    return bytes(buf)
        except httpx.TimeoutException:
            raise PhotoUnavailable(f"image_url timed out after {settings.url_timeout_s} s") from None
        except httpx.HTTPError as exc:
            raise PhotoUnavailable(f"could not fetch image_url ({type(exc).__name__}: {exc})") from None
    raise PhotoUnavailable(f"image_url redirected more than {settings.max_redirects} times")
