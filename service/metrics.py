"""Prometheus metrics of the service.

Under gunicorn, `gunicorn.conf.py` sets `PROMETHEUS_MULTIPROC_DIR` before any worker
starts, so every worker writes its samples to files there and `/metrics` on any worker
adds up all of them (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# Request latencies here are well under a second: finer buckets at the low end.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# Label values are bounded: these methods, the app's route templates, and OTHER for
# anything else (gunicorn accepts any 3-20 letter method token and any path).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
OTHER = "other"

REQUESTS = Counter(
    "slipway_http_requests", "HTTP requests answered.", ["method", "endpoint", "status"]
)
REQUEST_SECONDS = Histogram(
    "slipway_http_request_duration_seconds",
    "Time from request to response, in seconds.",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
INFERENCE_ROWS = Counter("slipway_inference_rows", "Rows (images) classified.")
FORWARD_SECONDS = Histogram(
    "slipway_model_forward_seconds",
    "Model forward pass time per batch, in seconds.",
    buckets=LATENCY_BUCKETS,
)
# livemin: the service is ready only if every live worker is.
MODEL_READY = Gauge(
    "slipway_model_ready", "1 when the model is loaded, else 0.", multiprocess_mode="livemin"
)


def exposition() -> tuple[bytes, str]:
    """Return the text exposition of all metrics (all workers') and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
