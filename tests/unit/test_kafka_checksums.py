"""kafka-python checks and writes record checksums in C (the crc32c package), not in pure
Python: ~6 ms of CPU per 20 KB on every batch each stage writes or fetches."""

from __future__ import annotations

import logging

import pytest
from kafka.record import util

from monitor.bus.kafka import warn_if_checksums_in_python


def test_the_installed_client_computes_checksums_in_c(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert warn_if_checksums_in_python()
    assert caplog.records == []
    assert util.crc32c_c is not None
    assert util.calc_crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


def test_a_client_without_it_is_named_at_start(monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(util, "crc32c_c", None)
    with caplog.at_level(logging.WARNING):
        assert not warn_if_checksums_in_python()
    assert "crc32c" in caplog.text and "pure Python" in caplog.text
