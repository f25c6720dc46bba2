"""A CVAT auto-annotation function (cvat_sdk.auto_annotation's DetectionFunction) drafting garment masks.

It runs the model locally (a Predictor on a model directory) or asks a running service over HTTP, and returns
one mask shape per class present (service.formats.cvat), or polygons when CVAT asks (conv_mask_to_poly).
"""
from __future__ import annotations

import base64
from pathlib import Path

import httpx
import numpy as np
import PIL.Image

try:
    import cvat_sdk.auto_annotation as cvataa
except ImportError as exc:  # not a serving dependency: only the CVAT side (cvat-cli, an agent) needs it
    raise ImportError("service.integrations.cvat needs cvat-sdk: pip install cvat-sdk") from exc

from models.images import encode_png
from models.taxonomy import Taxonomy
from service.drafting.answer import class_summaries, output_classes
from service.drafting.engine import Engine
from service.drafting.left_right import split_taxonomy
from service.drafting.predictor import Predictor
from service.formats import cvat as cvat_format
from service.formats import png as png_format
from service.formats import polygons
from service.settings import DEFAULT_MODEL_DIR, Settings

__all__ = ["GarmentMasks", "create"]


class GarmentMasks:
    """Masks (or polygons) of every taxonomy class present in a photo; label ids are class ids.

    Give exactly one source: `predictor` (a loaded service.drafting.predictor.Predictor), `model_dir` (loaded here),
    `base_url` of a running Tailor service, or an httpx `client` whose base URL is one (tests: TestClient).
    `token` is sent as a Bearer token to a service that needs one. With `left_right`, paired classes are
    split into `<name>_left` / `<name>_right` labels: the person's own sides (their left is on the image's right).
    """

    def __init__(self, *, predictor=None, model_dir: str | Path | None = None, base_url: str | None = None,
                 client: httpx.Client | None = None, token: str | None = None, backend: str = "auto",
                 threads: int | None = None, timeout: float = 120.0, polygon_tolerance: float = 1.0,
                 left_right: bool = False):
        given = [x for x in (predictor, model_dir, base_url, client) if x is not None and x != ""]
        if len(given) != 1:
            raise ValueError("give exactly one of predictor, model_dir, base_url or client")
        if model_dir:
            predictor = Predictor(model_dir, backend, threads)
        self.predictor = predictor
        # A local model drafts through the same engine as the service: the same size limits, max_side cap
        # and pixel budget, from the settings of this machine (TAILOR_* variables).
        self.engine = Engine(predictor, Settings(model_dir=predictor.model_dir, backend=backend, threads=threads)) \
            if predictor is not None else None
        self.tolerance = float(polygon_tolerance)
        self.left_right = bool(left_right)
        self.client = client
        if base_url:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            # trust_env=False: the service's address is given; environment proxies must not reroute it.
            self.client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout,
                                       trust_env=False)
        self._taxonomy: Taxonomy | None = predictor.taxonomy if predictor is not None else None
        self._spec: cvataa.DetectionFunctionSpec | None = None

    @property
    def taxonomy(self) -> Taxonomy:
        if self._taxonomy is None:
            # The service's current model says which classes it draws; never a hard-coded list.
            r = self.client.get("/v1/models/current")
            r.raise_for_status()
            self._taxonomy = Taxonomy.from_dict(r.json()["taxonomy"], origin="/v1/models/current")
        return self._taxonomy

    @property
    def classes(self) -> Taxonomy:
        """The class list of the labels drawn: the model's taxonomy, or its left/right split."""
        return split_taxonomy(self.taxonomy).taxonomy if self.left_right else self.taxonomy

    @property
    def spec(self) -> cvataa.DetectionFunctionSpec:
        if self._spec is None:
            # Background is the absence of a garment: it gets no label and no shape.
            self._spec = cvataa.DetectionFunctionSpec(labels=[
                cvataa.label_spec(c.name, c.id, type="mask") for c in self.classes.classes if c.id != 0])
        return self._spec

    def label_map(self, image: PIL.Image.Image) -> tuple[np.ndarray, dict[int, float]]:
        """(H, W) class ids and {class id: score (mean confidence)} for one photo."""
        # The frame goes to the model as a lossless PNG, the same bytes whether drafted here or by a service.
        frame = encode_png(np.asarray(image.convert("RGB")))
        if self.engine is not None:
            with self.engine.draft(frame, "frame.png") as d:
                labels, classes = output_classes(d.labels, d.taxonomy, self.left_right)
                return labels, {e["id"]: e["score"] for e in class_summaries(labels, d.confidence, classes)}
        r = self.client.post("/v1/predict", params={"formats": "png", "left_right": str(self.left_right).lower()},
                             files={"image": ("frame.png", frame, "image/png")})
        r.raise_for_status()
        body = r.json()
        labels = png_format.decode(base64.b64decode(body["label_map_png"]))
        return labels, {c["id"]: c["score"] for c in body["classes"]}

    def detect(self, context: cvataa.DetectionFunctionContext, image: PIL.Image.Image) -> list:
        labels, scores = self.label_map(image)
        threshold = context.conf_threshold
        shapes = []
        for cid, score in sorted(scores.items()):
            if cid == 0 or (threshold is not None and score < threshold):
                continue
            mask = labels == cid
            if not context.conv_mask_to_poly:
                shapes.append(cvataa.mask(cid, cvat_format.encode(mask)))
                continue
            # CVAT polygons have no holes; vertices are pixel centres, as in the sdk's own functions.
            for poly in polygons.encode(mask, self.tolerance):
                if len(poly["exterior"]) >= 3:
                    shapes.append(cvataa.polygon(cid, [float(v) for pt in poly["exterior"] for v in pt]))
        return shapes


def create(base_url: str = "", model_dir: str = "", token: str = "", polygon_tolerance: float = 1.0,
           left_right: bool = False) -> GarmentMasks:
    """Factory for `cvat-cli task auto-annotate ID --function-module service.integrations.cvat -p base_url=str:URL`
    (or `-p model_dir=str:models/default` to run the model in the cli's own process; `-p left_right=bool:true`
    for `<name>_left` / `<name>_right` labels of paired classes)."""
    if not base_url and not model_dir:
        model_dir = str(DEFAULT_MODEL_DIR)
    return GarmentMasks(base_url=base_url or None, model_dir=model_dir or None, token=token or None,
                        polygon_tolerance=polygon_tolerance, left_right=left_right)
