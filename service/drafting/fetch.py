"""A photo by URL: fetched only from allowed hosts and ports, never from private addresses by accident,
size capped while streaming, within a total deadline. Failures are the drafting errors (HostNotAllowed,
PhotoTooLarge, PhotoUnavailable), never HTTP answers; the predict routes and Label Studio fetch here.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx

from service.drafting.errors import HostNotAllowed, PhotoTooLarge, PhotoUnavailable
from service.settings import Settings

DEFAULT_PORTS = {"http": 80, "https": 443}
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def split_entry(entry: str) -> tuple[str, int | None]:
    """An allowed_url_hosts entry as (host, port or None): "host", "host:8080", "[::1]:8080"."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port)
    return entry, None


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_public(ip: Address) -> bool:
    # is_global is false for loopback, link-local, private, shared (CGNAT), reserved and unspecified ranges.
    return ip.is_global and not ip.is_multicast


def host_allowed(url: httpx.URL, settings: Settings, extra_hosts: tuple[str, ...] = ()) -> bool:
    """Whether the URL's host and port are allowed: an entry naming the host with that port, or with no
    port when the URL uses its scheme's own port. `extra_hosts` (the configured Label Studio host) allow
    their host on any port."""
    host, port = (url.host or "").lower(), url.port or DEFAULT_PORTS.get(url.scheme)
    if host in extra_hosts:
        return True
    for entry in settings.allowed_url_hosts:
        h, p = split_entry(entry)
        if h == host and (p == port if p is not None else port == DEFAULT_PORTS.get(url.scheme)):
            return True
    return False


def _check_url(url: httpx.URL, settings: Settings, extra_hosts: tuple[str, ...]) -> None:
    if url.scheme not in ("http", "https"):
        raise PhotoUnavailable(f"image_url must be http or https, got {url.scheme or 'no scheme'!r}")
    if not host_allowed(url, settings, extra_hosts):
        where = f"{url.host}:{url.port}" if url.port else url.host
        raise HostNotAllowed(f"image_url host {where!r} is not allowed (allowed_url_hosts: "
                             f"{settings.allowed_url_hosts}; a port other than the scheme's must be listed)")


async def _address(url: httpx.URL, settings: Settings, extra_hosts: tuple[str, ...]) -> Address:
    """The address to connect to, checked: a name must resolve to public addresses only, unless every
    address is in allowed_url_networks; a private address is fetched only when named explicitly (an IP
    literal or localhost in allowed_url_hosts, or the Label Studio host)."""
    host = (url.host or "").lower()
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, url.port or DEFAULT_PORTS[url.scheme],
                                                                 type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise PhotoUnavailable(f"image_url host {host!r} does not resolve ({exc})") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
    networks = [ipaddress.ip_network(n) for n in settings.allowed_url_networks]
    explicit = literal is not None or host == "localhost" or host in extra_hosts
    for ip in addresses:
        if _is_public(ip) or any(ip in net for net in networks):
            continue
        if explicit and (literal is not None or ip.is_loopback or host in extra_hosts):
            continue
        raise HostNotAllowed(f"image_url host {host!r} resolves to {ip}, a private, loopback or link-local "
                             "address; refused (list the address itself, or its network in allowed_url_networks)")
    return addresses[0]


def _too_large(size: int, limit: int) -> PhotoTooLarge:
    return PhotoTooLarge(f"image_url content is {size} bytes, above the limit of {limit} bytes (max_upload_bytes)")


async def fetch_url(raw_url: str, settings: Settings, *, headers: dict[str, str] | None = None,
                    extra_hosts: tuple[str, ...] = ()) -> bytes:
    """GET a photo from an allowed host, within url_deadline_s in all.

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
    extra_hosts = tuple(h.lower() for h in extra_hosts)
    try:
        async with asyncio.timeout(settings.url_deadline_s):
            return await _fetch(url, settings, headers, extra_hosts)
    except TimeoutError:
        raise PhotoUnavailable(f"image_url did not arrive within {settings.url_deadline_s:g} s "
                               "(url_deadline_s)") from None


async def _fetch(url: httpx.URL, settings: Settings, headers: dict[str, str] | None,
                 extra_hosts: tuple[str, ...]) -> bytes:
    first_host, limit = (url.host or "").lower(), settings.max_upload_bytes
    # trust_env=False: proxies from the environment must not change where a request goes.
    async with httpx.AsyncClient(follow_redirects=False, timeout=settings.url_timeout_s, trust_env=False) as client:
        try:
            for _ in range(settings.max_redirects + 1):
                # Every hop is checked again: its host and port, then the address it resolves to, which is
                # the one connected to (a second lookup could answer differently: DNS rebinding).
                _check_url(url, settings, extra_hosts)
                ip = await _address(url, settings, extra_hosts)
                request = client.build_request("GET", url.copy_with(host=str(ip)),
                                               headers={**(headers or {}), "Host": url.netloc.decode("ascii")},
                                               extensions={"sni_hostname": url.host})
                resp = await client.send(request, stream=True)
                try:
                    if resp.is_redirect:
                        url = url.join(resp.headers.get("location", ""))
                        if (url.host or "").lower() != first_host:
                            raise HostNotAllowed(f"image_url redirected from {first_host!r} to another host "
                                                 f"{url.host!r}; refused")
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
                finally:
                    await resp.aclose()
        except httpx.TimeoutException:
            raise PhotoUnavailable(f"image_url timed out after {settings.url_timeout_s} s") from None
        except httpx.HTTPError as exc:
            raise PhotoUnavailable(f"could not fetch image_url ({type(exc).__name__}: {exc})") from None
    raise PhotoUnavailable(f"image_url redirected more than {settings.max_redirects} times")
