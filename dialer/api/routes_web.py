"""The dashboard (docs/architecture.md §14.12): static HTML, ES modules and vendored libraries from
`dialer/web/`, package data found with `importlib.resources`, so an installed wheel serves it
as the checkout does.

No authentication here: the files hold no data; every figure comes from the API with the
session cookie. Every answer carries a strict Content-Security-Policy (no inline script or
style, nothing from another origin), so the pages run only the modules served below.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

from dialer.api.docs import doc
from dialer.api.errors import ApiError
from dialer.usecases.limits import text_problem

routes = web.RouteTableDef()


def _web_root() -> Path:
    """The packaged `dialer/web/` as a directory on disk (a wheel installs it as one)."""
    root = resources.files("dialer") / "web"
    if not isinstance(root, Path):  # a zipped install: FileResponse needs real files
        raise RuntimeError(f"dialer is not installed as files on disk: cannot serve {root}")
    return root


WEB_ROOT = _web_root()
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",  # revalidate (ETag / Last-Modified): no stale module mixes
}
# Only these kinds of file are served, each with its type (ES modules need a JS type).
TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def _file(root: Path, relative: str) -> Path:
    """`relative` inside `root`, or 404: no traversal, no hidden files, known types only."""
    parts = relative.split("/")
    if not relative or text_problem(relative, max_length=200) is not None:
        raise ApiError(404, "not_found", "no such file")  # a NUL would reach the filesystem
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise ApiError(404, "not_found", "no such file")
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()) or path.suffix not in TYPES or not path.is_file():
        raise ApiError(404, "not_found", "no such file")
    return path


def _send(path: Path) -> web.FileResponse:
    response = web.FileResponse(path, headers=SECURITY_HEADERS)
    response.content_type = TYPES[path.suffix]
    return response


@routes.get("/")
@doc("The dashboard's page (login, campaigns, agent view)", produces="text/html", errors=())
async def index(request: web.Request) -> web.FileResponse:
    return _send(_file(WEB_ROOT, "index.html"))


@routes.get("/static/{filename:.+}")
@doc(
    "The dashboard's modules, styles and vendored libraries (under dialer/web/)",
    produces="*/*",
    errors=(404,),
)
async def static(request: web.Request) -> web.FileResponse:
    return _send(_file(WEB_ROOT, request.match_info["filename"]))
