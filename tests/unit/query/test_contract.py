"""The query API's OpenAPI document: every parameter, response and status declared (no network)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from logriver_common.settings import TelemetrySettings
from logriver_query.app import create_app
from logriver_query.contract import HistogramParams, LogsParams, TopMessagesParams
from logriver_query.settings import QuerySettings

FILTERED = [
    "/v1/logs",
    "/v1/stats/errors",
    "/v1/stats/histogram",
    "/v1/stats/services",
    "/v1/stats/top-messages",
]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(QuerySettings(telemetry=TelemetrySettings(enabled=False)))
    schema: dict[str, Any] = app.openapi()
    return schema


def operation(document: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    op: dict[str, Any] = document["paths"][path][method]
    return op


def names(op: dict[str, Any]) -> set[str]:
    return {p["name"] for p in op.get("parameters", [])}


def test_search_parameters_are_declared(document: dict[str, Any]) -> None:
    assert names(operation(document, "/v1/logs")) == {
        "service",
        "level",
        "since",
        "until",
        "host",
        "env",
        "trace_id",
        "q",
        "match",
        "order",
        "limit",
        "page_size",
        "cursor",
        "consistent",
    }
    # Every filter the search takes narrows the histogram too.
    assert names(operation(document, "/v1/stats/histogram")) >= {
        "bucket",
        "group_by",
        "level",
        "q",
        "match",
        "trace_id",
        "host",
        "env",
    }
    assert names(operation(document, "/v1/stats/top-messages")) >= {"limit", "level"}
    assert names(operation(document, "/v1/stats/errors")) == {
        "service",
        "since",
        "until",
        "host",
        "env",
        "consistent",
    }


def test_metadata_filters_are_documented_on_every_filtered_operation(
    document: dict[str, Any],
) -> None:
    for path in FILTERED:
        description = operation(document, path)["description"]
        assert "meta.<key>=<value>" in description, path
        assert "[A-Za-z0-9_-]" in description


def test_every_status_is_declared_with_the_one_error_shape(document: dict[str, Any]) -> None:
    error_ref = "#/components/schemas/ErrorBody"
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            codes = set(op["responses"])
            assert "200" in codes, (method, path)
            # This API answers bad parameters with 400, never FastAPI's 422.
            assert "422" not in codes, (method, path)
            assert {"401", "403"} <= codes, (method, path)
            for code in codes - {"200"}:
                schema = op["responses"][code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": error_ref}, (method, path, code)
            ok = op["responses"]["200"]["content"]["application/json"]["schema"]
            assert ok.get("$ref", "").startswith("#/components/schemas/"), (method, path)
            if method == "get":
                assert {"400", "503"} <= codes, (method, path)
    assert "404" in operation(document, "/v1/logs/{event_id}")["responses"]
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_path_parameters_carry_their_patterns(document: dict[str, Any]) -> None:
    (event_id,) = operation(document, "/v1/logs/{event_id}")["parameters"][:1]
    assert event_id["schema"]["pattern"] == r"^[A-Za-z0-9._:\-]{1,64}$"
    trace = operation(document, "/v1/traces/{trace_id}")["parameters"][0]
    assert trace["schema"]["pattern"] == r"^[0-9a-fA-F]{32}$"


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (LogsParams, {"limit": "abc"}),
        (LogsParams, {"limit": "0"}),
        (LogsParams, {"page_size": "-5"}),
        (LogsParams, {"order": "sideways"}),
        (LogsParams, {"cursor": "x" * 1025}),
        (LogsParams, {"since": "x" * 1025}),
        (LogsParams, {"trace_id": "' OR 1=1"}),
        (LogsParams, {"consistent": "maybe"}),
        (HistogramParams, {"group_by": "$message"}),
        (HistogramParams, {"bucket": "5 minutes"}),
        (TopMessagesParams, {"limit": "101"}),
    ],
)
def test_parameter_models_refuse_wrong_types(model: type[Any], values: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(values)


def test_parameter_models_ignore_dynamic_names() -> None:
    # `meta.<key>` and unknown names are checked by the route, against the raw query string.
    parsed = LogsParams.model_validate({"meta.order": "A-1", "limit": "5"})
    assert parsed.limit == 5
