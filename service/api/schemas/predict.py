"""POST /v1/predict: the JSON request body and the answer, as /docs shows them.

The route serialises its answer itself (pydantic_core, for speed: tens of thousands of run lengths) and
the tests validate real answers against PredictResponse. Encoding payloads are free-form JSON: their
shapes are the service.formats encoders'.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.drafting.answer import LEFT_RIGHT_DOC


class PredictRequest(BaseModel):
    """JSON body of POST /v1/predict: exactly one of image_base64 or image_url."""

    model_config = ConfigDict(extra="forbid")
    image_base64: str | None = Field(None, description="the image file, base64 (a data: URL is accepted)")
    image_url: str | None = Field(None, description="http(s) URL on a host in allowed_url_hosts")
    formats: str | list[str] | None = Field(None, description="png, coco_rle, polygons, ls_brush, cvat")
    confidence_map: bool | None = Field(None, description="add an 8-bit confidence PNG (base64)")
    left_right: bool | None = Field(None, description=LEFT_RIGHT_DOC)

    @model_validator(mode="after")
    def _one_source(self) -> "PredictRequest":
        if (self.image_base64 is None) == (self.image_url is None):
            raise ValueError("send exactly one of image_base64 or image_url")
        return self


class ClassResult(BaseModel):
    id: int
    name: str
    area: int = Field(description="pixels of this class at the image's size")
    score: float = Field(description="mean confidence over the class's pixels")
    encodings: dict[str, Any] = Field(default_factory=dict, description="format name -> payload (not for background)")


class RegionResult(BaseModel):
    """One connected region of a class in the draft, and the class the model would give it next."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
    class_name: str = Field(alias="class", description="the region's class (the model's class list, before any "
                                                       "left/right split)")
    area: int = Field(description="pixels")
    bbox: list[int] = Field(description="x, y, width, height in photo pixels")
    probability: float = Field(description="the class's mean probability over the region")
    runner_up: str = Field(description="the most probable other class over the region")
    runner_up_probability: float = Field(description="its mean probability over the region")


class Size(BaseModel):
    height: int
    width: int


class TaxonomyRef(BaseModel):
    name: str
    tag: str


class PredictResponse(BaseModel):
    model_version: str
    taxonomy: TaxonomyRef = Field(description="the class list of this answer: the model's, or its left/right "
                                              "split (name ending -lr) when left_right was asked")
    left_right: bool = Field(False, description="paired classes split into the person's left and right (the "
                                                "person's left is on the image's right)")
    class_names: list[str] = Field(description="class id -> name for every id in this answer: classes, "
                                               "label_map_png and /v1/predict/mask.png pixel values")
    width: int
    height: int
    input_size: Size
    difficulty: float = Field(description="0 (certain) .. 1: mean shortfall of pixel confidence from 1")
    timings_ms: dict[str, float]
    formats: list[str]
    classes: list[ClassResult]
    label_map_png: str | None = Field(None, description="PNG label map of class ids, base64; when png is asked")
    confidence_png: str | None = Field(None, description="8-bit confidence (255 = 1.0) PNG, base64")
    regions: list[RegionResult] | None = Field(None, description="each drafted region of at least "
                                        "region_min_area pixels, largest first, with its runner-up class "
                                        "(\"dress 0.52, skirt 0.41\"): where one click may fix the class")
    content_hash: str | None = Field(None, description="sha256 of the photo's bytes: /v1/refine takes it instead "
                                                       "of the photo while the draft is kept")
    # Refine answers only (POST /v1/refine).
    edits: int | None = Field(None, description="edits applied (refine only)")
    changed_pixels: int | None = Field(None, description="pixels whose class the edits changed from the model's "
                                                         "draft (refine only)")
    model_calls: int | None = Field(None, description="0 when the photo's kept draft was refined, 1 when it had to "
                                                      "be drafted first (refine only)")
