"""Prometheus metrics: request counts and latency by route, inference time, batch sizes, load.

Each app gets its own registry (tests create several apps in one process), served at /metrics.
Routes are labelled by their template (/v1/batches/{job_id}), never the raw path, to bound cardinality.
"""
from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "MetricsMiddleware"]  # the route re-uses the content type
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("tailor_http_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("tailor_http_request_duration_seconds", "HTTP request latency by route",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=r)
        self.inference_seconds = Histogram("tailor_inference_seconds", "time of one model call (a whole batch)",
                                           buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("tailor_batch_size", "images per model call",
                                    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64), registry=r)
        self.in_flight = Gauge("tailor_requests_in_flight", "predict requests being processed", registry=r)
        self.queue_depth = Gauge("tailor_inference_queue_depth", "images waiting for the model", registry=r)
        self.pixels_in_flight = Gauge("tailor_pixels_in_flight", "pixels of the photos in work (TAILOR_MAX_MEGAPIXELS_"
                                      "IN_FLIGHT bounds them)", registry=r)
        self.rejected = Counter("tailor_rejected_total", "requests refused with 503 because the service was saturated",
                                registry=r)
        self.jobs_images = Counter("tailor_batch_job_images_total", "images processed by batch jobs",
                                   ["outcome"], registry=r)
        self.ready = Gauge("tailor_ready", "1 once the model is loaded and warmed up", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request (streaming-safe, unlike BaseHTTPMiddleware)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, template, str(status["code"])).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - t0)
