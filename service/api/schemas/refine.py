"""POST /v1/refine: the JSON request body, as /docs shows it (the answer is /v1/predict's PredictResponse).

Edits stay free-form JSON here: service.drafting.refine.parse_edits checks each one and names what is
wrong with it (a 422), which a schema's generic message would not.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.drafting.answer import LEFT_RIGHT_DOC

EDITS_DOC = (
    "edits in order, in photo pixels (x right, y down): a click {\"x\": 120, \"y\": 340, \"class\": \"skirt\"} (the "
    "region under it is this class); a negative click {\"x\": 120, \"y\": 340, \"class\": null} (the region goes "
    "to each pixel's runner-up class; add \"to\": \"background\" to name where it goes); a stroke "
    "{\"points\": [[x, y], ...], \"class\": \"skirt\", \"width\": 5} (these pixels and the similar ones around "
    "them are this class)")
CONTENT_HASH = r"^[0-9a-f]{64}$"


class RefineRequest(BaseModel):
    """JSON body of POST /v1/refine: exactly one of image_base64, image_url or content_hash, and the edits."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"content_hash": "9f2c...", "edits": [{"x": 275, "y": 560, "class": "skirt"}], "formats": "ls_brush"}]})
    image_base64: str | None = Field(None, description="the image file, base64 (a data: URL is accepted)")
    image_url: str | None = Field(None, description="http(s) URL on a host in allowed_url_hosts")
    content_hash: str | None = Field(None, pattern=CONTENT_HASH, description="a /v1/predict answer's content_hash: "
                                     "refine the draft kept for that photo without sending it again")
    edits: list[Any] = Field(description=EDITS_DOC)
    formats: str | list[str] | None = Field(None, description="png, coco_rle, polygons, ls_brush, cvat")
    confidence_map: bool | None = Field(None, description="add an 8-bit confidence PNG (base64)")
    left_right: bool | None = Field(None, description=LEFT_RIGHT_DOC)

    @model_validator(mode="after")
    def _one_source(self) -> "RefineRequest":
        if sum(v is not None for v in (self.image_base64, self.image_url, self.content_hash)) != 1:
            raise ValueError("send exactly one of image_base64, image_url or content_hash")
        return self
