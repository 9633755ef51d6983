"""flux.observability (which environment turns traces on, trace contexts) and flux.logs (the
JSON log lines)."""

from __future__ import annotations

import io
import json
import logging

import pytest
from flux import logs
from flux.observability import parse_traceparent, requested_exporters, trace_id_of

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("env", "exporters"),
    [
        ({}, set()),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, {"otlp"}),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, {"otlp"}),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, {"otlp"}),
        ({"OTEL_TRACES_EXPORTER": "console, otlp"}, {"console", "otlp"}),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, set()),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, set()),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}, {"otlp"}),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, set()),
    ],
)
def test_which_environment_turns_traces_on(env: dict[str, str], exporters: set[str]) -> None:
    assert requested_exporters(env) == exporters


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (VALID, VALID),
        (VALID.upper().encode(), VALID),
        (f" {VALID} ", VALID),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later", "00" + VALID[2:]),
        (VALID + "-extra", None),  # version 00 has exactly four fields
        ("ff" + VALID[2:], None),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", None),
        ("not a traceparent", None),
        (None, None),
    ],
)
def test_traceparents_are_read_as_w3c_says(value: str | bytes | None, parsed: str | None) -> None:
    assert parse_traceparent(value) == parsed


def test_the_trace_id_of_a_traceparent() -> None:
    assert trace_id_of(VALID) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_of("garbage") is None


def _json_lines(emit: logging.Logger) -> tuple[io.StringIO, logging.Handler]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    emit.addHandler(handler)
    return out, handler


def test_json_log_lines_carry_the_bound_execution_and_trace() -> None:
    logger = logging.getLogger("tests.json_logs")
    logger.propagate = False
    out, handler = _json_lines(logger)
    try:
        logger.warning("before %s", "binding")
        token = logs.bind("exec-1", "4bf92f3577b34da6a3ce929d0e0e4736")
        try:
            logger.warning("bound")
            logger.warning("named", extra={"execution_id": "exec-2"})
            try:
                raise ValueError("broken")
            except ValueError:
                logger.exception("failed")
        finally:
            logs.unbind(token)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    before, bound, named, failed = (json.loads(line) for line in out.getvalue().splitlines())
    assert before["message"] == "before binding" and before["level"] == "WARNING"
    assert before["logger"] == "tests.json_logs" and before["time"].endswith("+00:00")
    assert "execution_id" not in before and "trace_id" not in before
    assert bound["execution_id"] == "exec-1"
    assert bound["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert named["execution_id"] == "exec-2"
    assert (
        failed["exception"].startswith("Traceback") and "ValueError: broken" in failed["exception"]
    )


def test_configure_writes_json_lines_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers = []
    try:
        logs.configure("info", "json")
        logging.getLogger("tests.configure").info("hello")
    finally:
        root.handlers, level = saved
        root.setLevel(level)
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "hello"


def test_the_documented_json_line_is_what_the_formatter_writes() -> None:
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    logs_section = doc.split("## Logs", 1)[1]
    (example,) = re.findall(r"```json\n(.*?)\n```", logs_section, flags=re.S)
    record = logging.LogRecord("flux.worker", logging.WARNING, __file__, 1, "stopped", (), None)
    token = logs.bind("3f2c", "4bf92f3577b34da6a3ce929d0e0e4736")
    try:
        written = json.loads(logs.JsonFormatter().format(record))
    finally:
        logs.unbind(token)
    # The example also shows span_id, written when a span is current (a tracing worker).
    assert set(json.loads(example)) == {*written, "span_id"}
    for field in (*written, "span_id", "exception", "stack"):
        assert f"`{field}`" in logs_section, field
