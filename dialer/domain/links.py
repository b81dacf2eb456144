"""Signed tokens that reach recipients: pure HMAC, no I/O (docs/architecture.md §9).

- one-click unsubscribe: `<lead id>.<mac>`;
- the Message-ID of an attempt's mail: `<a<attempt id>.<mac>@<domain>>`, so a reply or a
  bounce that names it leads back to the attempt, and a forged one names nothing;
- the VERP token of the return path and Reply-To (`bounces+<token>@example.com`):
  `a<attempt id>-<mac>` (characters every mail server keeps in a local part);
- a tracked link: `<attempt id>.<link id>.<mac>`.

A token we did not sign names nothing. Each kind has its own MAC domain: a token of one kind
is never accepted as another.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

_MAX_ID = 18  # decimal digits: ids are 64-bit integers
_MSGID = re.compile(r"<?a([0-9]{1,18})\.([0-9a-f]{16})@[^>\s]+>?", re.ASCII)
_VERP = re.compile(r"a([0-9]{1,18})-([0-9a-f]{20})", re.ASCII)
# An http(s) link in a plain-text body: up to white space or a character that closes it in
# prose; trailing sentence punctuation is not part of it.
_URL = re.compile(r"https?://[^\s<>\"'()\[\]]+", re.IGNORECASE)
_TRAILING = ".,;:!?"


def _digits(text: str) -> int | None:
    # `isdigit()` alone lets "²" through to int(); non-ASCII never reaches the compare.
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_ID:
        return None
    return int(text)


@dataclass(frozen=True, slots=True)
class LinkSigner:
    secret: bytes

    def unsubscribe_token(self, lead_id: int) -> str:
        return f"{lead_id}.{self._mac(lead_id)}"

    def lead_of_unsubscribe_token(self, token: str) -> int | None:
        """The lead a signed unsubscribe token names, or None if it is not ours."""
        lead, _, mac = token.partition(".")
        lead_id = _digits(lead)
        if lead_id is None or not mac.isascii():
            return None
        ours = self._mac(lead_id).encode()
        return lead_id if hmac.compare_digest(mac.encode(), ours) else None

    def _mac(self, lead_id: int) -> str:
        return hmac.digest(self.secret, f"unsub:{lead_id}".encode(), "sha256").hex()[:32]

    # -- the identity of an attempt's mail ----------------------------------------------------
    def message_id(self, attempt_id: int, domain: str) -> str:
        """The Message-ID of the attempt's mail, `<a<id>.<mac>@domain>`."""
        return f"<a{attempt_id}.{self._sign('msgid', str(attempt_id), 16)}@{domain}>"

    def attempt_of_message_id(self, message_id: str) -> int | None:
        """The attempt a Message-ID we wrote names, or None (not ours, or forged)."""
        m = _MSGID.fullmatch(message_id.strip())
        if m is None:
            return None
        attempt = int(m.group(1))
        ours = self._sign("msgid", str(attempt), 16)
        return attempt if hmac.compare_digest(m.group(2), ours) else None

    def verp_token(self, attempt_id: int) -> str:
        return f"a{attempt_id}-{self._sign('verp', str(attempt_id), 20)}"

    def attempt_of_verp_token(self, token: str) -> int | None:
        m = _VERP.fullmatch(token.lower())
        if m is None:
            return None
        attempt = int(m.group(1))
        ours = self._sign("verp", str(attempt), 20)
        return attempt if hmac.compare_digest(m.group(2), ours) else None

    def click_token(self, attempt_id: int, link_id: int) -> str:
        body = f"{attempt_id}.{link_id}"
        return f"{body}.{self._sign('click', body, 24)}"

    def of_click_token(self, token: str) -> tuple[int, int] | None:
        """(attempt id, link id) of a tracked link's token, or None if it is not ours."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        attempt, link = _digits(parts[0]), _digits(parts[1])
        if attempt is None or link is None or not parts[2].isascii():
            return None
        ours = self._sign("click", f"{attempt}.{link}", 24)
        if not hmac.compare_digest(parts[2].encode(), ours.encode()):
            return None
        return attempt, link

    def _sign(self, kind: str, text: str, size: int) -> str:
        # hmac.digest: OpenSSL's one-shot, several times cheaper than hmac.new per token.
        return hmac.digest(self.secret, f"{kind}:{text}".encode(), "sha256").hex()[:size]


def verp_address(base: str, token: str) -> str:
    """`bounces@example.com` + token -> `bounces+<token>@example.com`."""
    local, at, domain = base.rpartition("@")
    if not at:
        raise ValueError(f"not an address: {base!r}")
    return f"{local}+{token}@{domain}"


def verp_token_of(address: str, base: str) -> str | None:
    """The token of `address` when it is `base` with a `+token`, else None."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    b_local, _, b_domain = base.rpartition("@")
    if domain.lower() != b_domain.lower():
        return None
    head, plus, token = local.partition("+")
    if not plus or head.lower() != b_local.lower():
        return None
    return token


def find_links(body: str) -> list[str]:
    """The http(s) links of a plain-text body, in order, each once."""
    seen: dict[str, None] = {}
    for m in _URL.finditer(body):
        seen.setdefault(m.group(0).rstrip(_TRAILING), None)
    return [u for u in seen if u.partition("://")[2]]


def rewrite_links(body: str, tracked: Callable[[str], str | None]) -> str:
    """Every http(s) link of `body` replaced by `tracked(url)` (None: left as written)."""

    def one(m: re.Match[str]) -> str:
        raw = m.group(0)
        url = raw.rstrip(_TRAILING)
        new = tracked(url) if url.partition("://")[2] else None
        return raw if new is None else new + raw[len(url) :]

    return _URL.sub(one, body)
