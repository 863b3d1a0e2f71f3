"""``/healthz``, ``/readyz`` and ``/metrics``: what probes and Prometheus read."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from pipeline.service.dependencies import MetricsDep, StateDep
from pipeline.service.models import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is alive (no API key needed)."""
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready (yet)."}},
)
def readyz(response: Response, state: StateDep) -> Readiness:
    """The model is loaded and the boot streams were started."""
    ready = state.ready
    if not ready:
        response.status_code = 503
    return Readiness(
        ready=ready,
        model=state.engine.model_name,
        error=state.engine.error,
        streams=len(state.manager),
    )


@router.get("/metrics", response_class=Response)
def metrics(service_metrics: MetricsDep) -> Response:
    """Prometheus text: per-stream frame counters, latency, sessions, clients."""
    return Response(service_metrics.render(), media_type=CONTENT_TYPE_LATEST)
