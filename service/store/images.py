"""Photos in the store: one row and one file per distinct photo, found by the sha256 of its bytes.

Corrections and worklist items both name their photo this way; the first write of a photo stages its file
(kept with its EXIF, under the format's own suffix) in the same transaction as the row that needs it.
"""
from __future__ import annotations

import io

from PIL import Image as PILImage
from sqlalchemy.orm import Session

from service.store.files import FileStore, Staged
from service.store.tables import Image

_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif", "GIF": ".gif"}


def image_suffix(data: bytes) -> str:
    with PILImage.open(io.BytesIO(data)) as img:
        return _SUFFIX.get(img.format or "", ".img")


def stored_image(session: Session, files: FileStore, staged: list[Staged], sha: str, data: bytes,
                 shape: tuple[int, int]) -> Image:
    """The photo's row, added (its file staged into `staged`) unless the store has it already."""
    image = session.get(Image, sha)
    if image is None:
        st = files.stage("images", data, image_suffix(data))
        staged.append(st)
        image = Image(sha256=sha, width=shape[1], height=shape[0], path=st.rel, bytes=len(data))
        session.add(image)
    return image
