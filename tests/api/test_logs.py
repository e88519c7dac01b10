"""Structured logs: one JSON object per line, with the fields given in `extra`."""

from __future__ import annotations

import json
import logging

from rollon.api.logs import JsonFormatter


def _format(record: logging.LogRecord) -> dict[str, object]:
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_a_record_is_one_json_line_with_its_extra_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": "rollon.access",
            "levelname": "INFO",
            "msg": "request %s",
            "args": ("done",),
            "status": 201,
            "route": "/v1/transfers",
            "color_message": "\x1b[1mignored\x1b[0m",
        }
    )
    entry = _format(record)
    assert entry["message"] == "request done"
    assert entry["level"] == "info"
    assert entry["logger"] == "rollon.access"
    assert (entry["status"], entry["route"]) == (201, "/v1/transfers")
    assert "color_message" not in entry
    assert str(entry["time"]).endswith("+00:00")


def test_an_exception_is_kept_inside_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), None)
        import sys

        record.exc_info = sys.exc_info()
    entry = _format(record)
    assert "ValueError: boom" in str(entry["error"])
