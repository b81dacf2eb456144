from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def engine_moves_follow_the_tables(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The engine logs (never silently skips) a lead or agent move the domain tables refuse
    (domain/states.py); in these scenarios every move it makes must be one the tables allow."""
    caplog.set_level(logging.WARNING)
    yield
    refused = [r.getMessage() for r in caplog.records if r.getMessage().endswith("_refused")]
    assert refused == []
