"""GET /v1/effort: correction effort over the whole store, by model version, class and day.

It says whether drafts save work: how far annotators moved each draft (changed pixels, IoU and boundary F
of draft vs final), for every correction whose draft is known. A worklist's own is .../worklists/{ref}/effort.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from service.api import API_PREFIX
from service.api.deps import ReadAccess, SettingsDep, StoreDep
from service.api.schemas.review import EffortSummary
from service.review.effort_records import effort_records, effort_summary

router = APIRouter(prefix=f"{API_PREFIX}/effort", tags=["effort"])


@router.get("", response_model=EffortSummary, response_model_exclude_unset=True)
def effort(store: StoreDep, settings: SettingsDep, _auth: ReadAccess,
           since: Annotated[datetime | None, Query(description="only corrections updated since (ISO 8601)")] = None,
           taxonomy: Annotated[str | None, Query(description="e.g. fashion-13@1")] = None,
           records: bool = False) -> EffortSummary:
    """Store-wide correction effort: per model version (and class), per class, and per day."""
    rows = effort_records(store.session, store.files, taxonomy=taxonomy, since=since,
                          thresholds=settings.qa_thresholds)
    return EffortSummary(**effort_summary(rows), **({"records": rows} if records else {}))
