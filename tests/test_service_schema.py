"""Schemathesis against the served OpenAPI document: no generated request gets a 5xx.

The real pipeline and the tiny checkpoint sit behind the API (the errors a client can provoke come
from there), on a real server over 127.0.0.1. Requests are generated from the schema, valid and
invalid ones, with a fixed budget and a fixed seed so the run is bounded and repeatable.

Generated ids and sources would almost never name a stream that exists or a source that works,
so part of the cases are pointed at two streams made beforehand, and part of the created streams
at a test pattern: the fuzzing then also reaches the paths of a running stream.

Left out on purpose: the event stream (a valid request never ends, it streams) and the ``sinks``
field (generated sinks would write files and send webhooks or datagrams wherever the generator
points them); both have targeted tests in ``test_service_api.py``.
"""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis.checks import not_a_server_error

from pipeline.service import ModelEngine, ServiceSettings, create_app
from tests.service_helpers import start_server

MAX_EXAMPLES = 250
"""Generated requests in all: about 10-20 s on two cores."""
PATTERN = "testpattern?fps=2&size=64x48"


def _aim_at_live_streams(case, known: list[str]) -> None:
    """Point part of the cases at existing streams and working sources (deterministically)."""
    stream_id = (case.path_parameters or {}).get("stream_id")
    if stream_id is not None and case.method != "DELETE" and len(str(stream_id)) % 2 == 0:
        case.path_parameters["stream_id"] = known[len(str(stream_id)) % len(known)]
    if isinstance(case.body, dict):
        case.body.pop("sinks", None)
        source = case.body.get("source")
        if case.path == "/streams" and isinstance(source, str) and len(source) % 3 == 0:
            case.body["source"] = PATTERN


@pytest.fixture
def served(tiny_tracker, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a generated file path stays inside the test's directory
    engine = ModelEngine.from_tracker(tiny_tracker, model_name="tiny")
    app = create_app(ServiceSettings(state_dir=tmp_path / "state", max_streams=3), engine=engine)
    server = start_server(app)
    server.wait_booted()
    yield server
    server.stop()


def test_generated_requests_never_get_a_server_error(served):
    with served.client() as http:
        known = [
            http.post("/streams", json={"source": PATTERN, "classes": ["shape"]}).json()["id"]
            for _ in range(2)
        ]
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json").exclude(
        path_regex=r"/events$"
    )
    strategy = schema.as_strategy(schemathesis.GenerationMode.POSITIVE) | schema.as_strategy(
        schemathesis.GenerationMode.NEGATIVE
    )

    @given(case=strategy)
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def request_gets_no_5xx(case):
        _aim_at_live_streams(case, known)
        case.call_and_validate(base_url=served.url, checks=[not_a_server_error], timeout=30)

    request_gets_no_5xx()
