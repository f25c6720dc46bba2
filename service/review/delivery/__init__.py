"""Delivery packages: a batch's photos, final label maps, colour maps, COCO RLE and metadata, as a folder and a zip.
writer.py knows nothing of the store (it takes DeliveryItems from any source); worklist.py builds them from one.
Only approved masks are delivered unless unapproved ones are asked for, and then they are flagged.
"""
from service.review.delivery.items import DeliveryError, DeliveryItem, FLAG_REASON, check_image_id, sanitize_image_id
from service.review.delivery.writer import PackageResult, write_package

__all__ = ["DeliveryError", "DeliveryItem", "FLAG_REASON", "PackageResult", "check_image_id", "sanitize_image_id",
           "write_package"]
