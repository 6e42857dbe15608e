"""Structured logs: one JSON object per line with the record's extra fields."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from taggerhub.logs import JsonLineFormatter, setup_logging


def test_a_record_becomes_one_json_line_with_its_extra_fields() -> None:
    record = logging.makeLogRecord({"name": "taggerhub.server", "levelno": logging.INFO, "levelname": "INFO",
                                    "msg": "client connected", "client": "127.0.0.1:5", "session": "s1"})
    line = JsonLineFormatter().format(record)
    assert "\n" not in line
    event = json.loads(line)
    assert event["event"] == "client connected" and event["logger"] == "taggerhub.server"
    assert event["level"] == "info" and event["client"] == "127.0.0.1:5" and event["session"] == "s1"


def test_exceptions_stay_on_the_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("t").makeRecord("t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    event = json.loads(JsonLineFormatter().format(record))
    assert "ValueError: boom" in event["exception"]


def test_setup_logging_writes_json_to_stderr_and_quiets_pyro(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("debug")
    logging.getLogger("taggerhub.test").info("hello", extra={"n": 1})
    logging.getLogger("Pyro5.core").info("chatter")
    err = capsys.readouterr().err.strip().splitlines()
    assert [json.loads(line)["event"] for line in err] == ["hello"]
    assert logging.getLogger().level == logging.DEBUG
