"""Fixtures of the scale-out tests: a fresh PostgreSQL database per test (the session's, its
schema dropped). Each test starts its own Redis (tests/scaleout/rig.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import reset_postgres, run_async
from tests.scaleout.rig import ClusterSpec

MakeSpec = Callable[..., ClusterSpec]


@pytest.fixture
def spec(postgres_url: str, tmp_path: Path) -> MakeSpec:
    """`spec(workers=3, …)`: a ClusterSpec on an empty database, in this test's directory."""
    run_async(reset_postgres(postgres_url))

    def make(**options: object) -> ClusterSpec:
        return ClusterSpec(postgres_url, tmp_path, **options)  # type: ignore[arg-type]

    return make
