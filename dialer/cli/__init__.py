"""The `dialer` command: serve, worker, demo, migrate and the admin and campaign groups."""

from dialer.cli.main import app, main

__all__ = ["app", "main"]
