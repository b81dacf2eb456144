"""The HTTP API (docs/api.md): aiohttp routes, auth, live events, webhooks."""
