"""One module per resource: predict, batches, models, health (and /metrics).

Each exposes `router`; service.app mounts them under /v1 (metrics at the root, where scrapers look).
"""

API_PREFIX = "/v1"  # in each router's own prefix, so route templates (metrics labels) are full paths
