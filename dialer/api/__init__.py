"""The HTTP API (API.md): aiohttp routes, auth, live events, webhooks."""
