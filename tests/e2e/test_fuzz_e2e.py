"""Property-based fuzzing of the server's OpenAPI document with schemathesis, against a real
server with authentication off and on, with requests its schema allows and requests it does
not: no 5xx, every answer's status is declared for its
operation, and every answer matches its declared schema and content type.

Bounded: ``FUZZ_EXAMPLES`` generated requests per operation (``FLUX_FUZZ_EXAMPLES`` overrides
it). Event streams are left out (they answer until the client leaves), and sync waits are
one second so a generated ``sync`` run cannot hold the budget.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.cluster import FluxCluster, make_cluster

pytestmark = pytest.mark.e2e

FUZZ_EXAMPLES = int(os.environ.get("FLUX_FUZZ_EXAMPLES", "8"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]
STREAMS = ("/executions/{execution_id}/stream", "/workers/{name}/connect")


@pytest.fixture(scope="module", params=["off", "on"], ids=["auth-off", "auth-on"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A server (authentication ``off`` or ``on``) and the headers the fuzzer sends."""
    tmp_path: Path = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    cluster = make_cluster(
        tmp_path,
        FLUX_SERVER__AUTH=request.param,
        FLUX_SERVER__SYNC_TIMEOUT="1",
        # Generated worker tokens fail by the hundred: keep the address from being blocked.
        FLUX_SERVER__AUTH_FAILURE_LIMIT="1000000",
    )
    try:
        cluster.start_server()
        key = cluster.api_key
        yield cluster, {"Authorization": f"Bearer {key}"} if key else {}
    finally:
        cluster.stop()


def _schema(cluster: FluxCluster) -> Any:
    """The server's own document, without its event streams and the stream run mode."""
    raw = httpx.get(f"{cluster.url}/openapi.json", timeout=30).json()
    for path in STREAMS:
        raw["paths"].pop(path, None)
    for item in raw["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                enum = parameter.get("schema", {}).get("enum")
                if parameter["name"] == "mode" and enum and "stream" in enum:
                    parameter["schema"]["enum"] = [m for m in enum if m != "stream"]
    schema = schemathesis.openapi.from_dict(raw)
    schema.config.update(base_url=cluster.url)
    return schema


def _operations(schema: Any) -> Iterator[Any]:
    for result in schema.get_all_operations():
        yield result.ok()


def test_the_server_answers_as_its_openapi_document_says(target) -> None:
    cluster, headers = target
    schema = _schema(cluster)
    failures: list[str] = []
    for operation in _operations(schema):

        @given(case=operation.as_strategy() | operation.as_strategy(GenerationMode.NEGATIVE))
        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            response = case.call(base_url=cluster.url, headers=headers, timeout=30)
            case.validate_response(response, checks=CHECKS)

        try:
            fuzz()
        except BaseExceptionGroup as group:  # every operation is tried; all reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {group}")
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures) + "\n\n" + cluster.tail(80)
