"""Logging of the server and worker: one line format, with the request id of the request being served.

`configure_logging` gives the `tailor.*` loggers a handler (uvicorn configures only its own), so model
loads, hot swaps and errors reach the console beside uvicorn's access lines.
"""
from __future__ import annotations

import logging
from contextvars import ContextVar

request_id: ContextVar[str] = ContextVar("request_id", default="-")
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


class RequestIdFilter(logging.Filter):
    """Adds record.request_id: the id of the request this log line was written for, or "-"."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


LEVELS = {"critical": logging.CRITICAL, "error": logging.ERROR, "warning": logging.WARNING,
          "info": logging.INFO, "debug": logging.DEBUG, "trace": logging.DEBUG}  # uvicorn's names


def configure_logging(level: str = "info") -> None:
    """Console logging for `tailor.*` at `level` (one of LEVELS); idempotent."""
    logger = logging.getLogger("tailor")
    logger.setLevel(LEVELS[level.lower()])
    if not any(getattr(h, "_tailor", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(RequestIdFilter())
        handler._tailor = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
