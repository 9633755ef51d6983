"""A real Flux server and worker, with the test workflows registered, shared by a module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mcp_support import WORKFLOWS

from tests.support.cluster import FluxCluster, running_cluster


@pytest.fixture(scope="module")
def flux_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FluxCluster]:
    with running_cluster(tmp_path_factory.mktemp("mcp"), WORKFLOWS) as cluster:
        yield cluster
