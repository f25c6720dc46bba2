"""Delivery packages: a batch's photos, final label maps, colour maps, COCO RLE and metadata, as a folder and a zip.
Pure library code (no database, no HTTP): callers build DeliveryItems from whatever stores their masks.
Only approved masks are delivered unless unapproved ones are asked for, and then they are flagged.
"""
from service.delivery.items import DeliveryError, DeliveryItem, FLAG_REASON, check_image_id, sanitize_image_id
from service.delivery.writer import PackageResult, write_package

__all__ = ["DeliveryError", "DeliveryItem", "FLAG_REASON", "PackageResult", "check_image_id", "sanitize_image_id",
           "write_package"]
