"""A small HTTP client of the dialer API (what `dialer campaign …` uses)."""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any, Self

import aiohttp


def local_url(host: str, port: int) -> str:
    """The URL of a server listening on host:port, as seen from this machine."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class ApiFailure(Exception):
    """The API answered with an error, or could not be reached (status 0)."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or {}

    def __str__(self) -> str:
        if self.status == 0:
            return self.message
        return f"{self.status} {self.code}: {self.message}"


class Client:
    """`async with Client(base_url, token) as api: await api.campaigns()`."""

    def __init__(self, base_url: str, token: str | None, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, *, json: Any = None) -> Any:
        """The decoded JSON answer; raises ApiFailure for any error status."""
        if self._session is None:
            raise RuntimeError("use `async with Client(...)`")
        url = f"{self.base_url}{path}"
        try:
            async with self._session.request(method, url, json=json) as resp:
                raw = await resp.read()
                body = _decode(resp, raw)
                if resp.status >= 400:
                    raise _failure(resp.status, body, resp.reason or "")
                return body
        except aiohttp.ClientError as exc:
            raise ApiFailure(0, "unreachable", f"cannot reach {self.base_url}: {exc}") from None
        except TimeoutError:
            raise ApiFailure(0, "timeout", f"{self.base_url} did not answer in time") from None

    async def campaigns(self, *, state: str | None = None, archived: str = "false") -> list[Any]:
        query = f"?archived={archived}" + (f"&state={state}" if state else "")
        body = await self.request("GET", f"/api/v1/campaigns{query}")
        return list(body["items"])

    async def pause(self, campaign_id: str, *, reason: str | None = None) -> Any:
        body = {"reason": reason} if reason else None
        return await self.request("POST", f"/api/v1/campaigns/{campaign_id}/pause", json=body)

    async def resume(self, campaign_id: str) -> Any:
        return await self.request("POST", f"/api/v1/campaigns/{campaign_id}/resume")

    async def terminate(self, campaign_id: str, *, confirm: str) -> Any:
        return await self.request(
            "POST", f"/api/v1/campaigns/{campaign_id}/terminate", json={"confirm": confirm}
        )


def _decode(resp: aiohttp.ClientResponse, raw: bytes) -> Any:
    if not raw:
        return None
    if resp.content_type != "application/json":
        return raw.decode(errors="replace")
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _failure(status: int, body: Any, reason: str) -> ApiFailure:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return ApiFailure(
            status,
            str(error.get("code", "error")),
            str(error.get("message", reason)),
            error.get("details") if isinstance(error.get("details"), dict) else None,
        )
    return ApiFailure(status, "http_error", reason or str(body)[:200])
