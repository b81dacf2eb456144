"""The API fixtures of tests/api (a real app on a loopback port, engine on a fake clock)."""

from tests.api.conftest import make_api

__all__ = ["make_api"]
