"""schemathesis against the generated OpenAPI schema: no generated request may cause a server error.

Driven through schemathesis' Python API (each operation's Hypothesis
strategy) rather than its pytest plugin, which does not support pytest 9.
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings

from sparsearch.index.writer import LiveSettings
from sparsearch.service.app import create_app
from sparsearch.service.settings import ServiceSettings


def test_no_server_errors(tmp_path: Path) -> None:
    app = create_app(ServiceSettings(data_dir=tmp_path, api_key=None, open_writes=True,
                                     live=LiveSettings(flush_docs=50)))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 10
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def exercise(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call()
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")

        exercise()
    assert failures == []
