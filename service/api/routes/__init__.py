"""One module per resource: predict, batches, corrections, models, jobs, worklists, worklist_review, qa,
health, labelstudio (+ labelstudio_events) and metrics. Each exposes `router`; service.api.app mounts them (metrics at the root).
"""
