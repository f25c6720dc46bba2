"""What /setup checks when Label Studio connects a project: that Tailor can fetch the project's photos (an LS
URL it may reach, a token LS accepts), that its labels map to the taxonomy, and that LS's webhook carries the
credentials the backend's routes need (set on it through LS's API when missing).

A problem is found when the backend is added, not later as empty drafts; each names the setting that fixes it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from models.taxonomy import Taxonomy
from service.integrations.labelstudio import LabelConfig, class_labels
from service.integrations.labelstudio_client import Connection, Connections

log = logging.getLogger("tailor.labelstudio")
# LS gives /setup 3 s (ML_TIMEOUT_SETUP) and waits for it inside its own request: each probe gets less.
PROBE_TIMEOUT_S = 1.0
LEGACY_HINT = ("Label Studio 1.23 refuses its legacy tokens unless it was first started with "
               "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true; a personal access token (Account & Settings) always works")


@dataclass(frozen=True)
class Problem:
    message: str   # the whole story, for /setup's body, /status and the log
    hint: str      # a few words naming the setting, URL-safe: Label Studio shows only a URL (see setup route)


async def access_problems(conns: Connections, conn: Connection, settings) -> list[Problem]:
    """Can Tailor read this LS instance's files and API? One GET of /api/current-user/whoami answers it."""
    if not conn.base_url:
        return [Problem("no Label Studio URL is known: set TAILOR_LABELSTUDIO_URL to Label Studio's address as "
                        "Tailor reaches it (e.g. http://127.0.0.1:8080)", "set-TAILOR_LABELSTUDIO_URL")]
    if not conns.may_fetch(conn.base_url, conn):
        return [Problem(f"Label Studio sent its address {conn.base_url}, but Tailor fetches only from "
                        f"TAILOR_LABELSTUDIO_URL or TAILOR_ALLOWED_URL_HOSTS: set TAILOR_LABELSTUDIO_URL="
                        f"{conn.base_url}", "set-TAILOR_LABELSTUDIO_URL")]
    where = "TAILOR_LABELSTUDIO_TOKEN" if settings.labelstudio_token else "the token Label Studio sent in /setup"
    if not conn.token:
        return [Problem("no Label Studio token is known, so its photos (/data/upload/...) cannot be fetched: set "
                        "TAILOR_LABELSTUDIO_TOKEN", "set-TAILOR_LABELSTUDIO_TOKEN")]
    try:
        resp = await conns.call("GET", "/api/current-user/whoami", conn, timeout=PROBE_TIMEOUT_S)
        code = resp.status_code
    except ValueError as exc:  # unreachable, or a personal access token LS would not exchange
        if "personal access token" in str(exc):
            code = 401
        elif "Timeout" in str(exc):  # slow, not wrong: refusing the connection for it would be the worse error
            log.warning("Label Studio at %s did not answer whoami in %.0f s; not checked", conn.base_url,
                        PROBE_TIMEOUT_S)
            return []
        else:
            return [Problem(f"Label Studio at {conn.base_url} cannot be reached from Tailor ({exc}): set "
                            "TAILOR_LABELSTUDIO_URL to its address as Tailor reaches it",
                            "Label-Studio-unreachable:set-TAILOR_LABELSTUDIO_URL")]
    if code in (401, 403):
        return [Problem(f"Label Studio refused {where} (HTTP {code}). {LEGACY_HINT}: set TAILOR_LABELSTUDIO_TOKEN",
                        "token-refused:set-TAILOR_LABELSTUDIO_TOKEN")]
    if code != 200:
        return [Problem(f"{conn.base_url}/api/current-user/whoami answered HTTP {code}: is TAILOR_LABELSTUDIO_URL "
                        "Label Studio's address?", "check-TAILOR_LABELSTUDIO_URL")]
    return []


def label_problems(config: LabelConfig, taxonomy: Taxonomy, mapping) -> tuple[list[Problem], list[str]]:
    """No class with a label is a problem (every draft would be empty); some classes without one are not."""
    covered = {cid for c in config.controls for cid in class_labels(c, taxonomy, mapping)}
    missing = [c.name for c in taxonomy.classes if c.id != 0 and c.id not in covered]
    if covered:
        return [], missing
    names = ", ".join(taxonomy.names[1:])
    return [Problem(f"no label of the project matches a class of taxonomy {taxonomy.tag} ({names}): name the "
                    "labels after the classes (any case) or map them with TAILOR_LABELSTUDIO_LABEL_MAP "
                    "(e.g. pants=Trousers)", "no-label-matches-a-class:see-TAILOR_LABELSTUDIO_LABEL_MAP")], missing


async def check_webhook(conns: Connections, conn: Connection, project: int, webhook_path: str,
                        authorization: str | None, accepts: Callable[[dict], bool]) -> dict:
    """Find the webhook LS made for this backend; when the backend needs credentials (`authorization` is what
    LS sent with this /setup) and the webhook's headers would be refused, set that header on it.

    LS makes the webhook only after the first /setup; it calls /setup again right after, and before every
    prediction batch, so a later call finds it. Never raises: the answer says what was found or done.
    """
    try:
        resp = await conns.call("GET", f"/api/webhooks/?project={int(project)}", conn, timeout=PROBE_TIMEOUT_S)
        hooks = resp.json() if resp.status_code == 200 else None
    except ValueError as exc:
        return {"found": False, "error": str(exc)}
    if not isinstance(hooks, list):
        return {"found": False, "error": f"GET /api/webhooks/ answered HTTP {resp.status_code}"}
    hook = next((h for h in hooks if isinstance(h, dict) and urlsplit(str(h.get("url"))).path == webhook_path),
                None)
    if hook is None:
        return {"found": False}
    headers = hook.get("headers") if isinstance(hook.get("headers"), dict) else {}
    out = {"found": True, "id": hook.get("id"), "url": hook.get("url"), "is_active": hook.get("is_active"),
           "needs_credentials": authorization is not None}
    if authorization is None or accepts(headers):
        return {**out, "accepted": True, "updated": False}
    fixed = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "x-api-token")}
    fixed["Authorization"] = authorization
    try:
        resp = await conns.call("PATCH", f"/api/webhooks/{int(hook['id'])}/", conn,
                                json={"url": hook["url"], "headers": fixed}, timeout=PROBE_TIMEOUT_S)
    except (ValueError, TypeError, KeyError) as exc:
        resp, err = None, str(exc)
    if resp is None or resp.status_code != 200:
        err = err if resp is None else f"HTTP {resp.status_code}"
        log.warning("LS project %s: its webhook %s would be refused and could not be given credentials (%s)",
                    project, hook.get("url"), err)
        return {**out, "accepted": False, "updated": False, "error": err}
    log.info("LS project %s: gave webhook %s the Authorization header Label Studio sends to this backend",
             project, hook.get("url"))
    return {**out, "accepted": True, "updated": True}
