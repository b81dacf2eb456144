"""Signed links that reach recipients (one-click unsubscribe): pure HMAC, no I/O.

A token is `<lead id>.<mac>`; a token we did not sign names no lead (docs/architecture.md,
"Email").
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LinkSigner:
    secret: bytes

    def unsubscribe_token(self, lead_id: int) -> str:
        return f"{lead_id}.{self._mac(lead_id)}"

    def lead_of_unsubscribe_token(self, token: str) -> int | None:
        """The lead a signed unsubscribe token names, or None if it is not ours."""
        lead, _, mac = token.partition(".")
        # `isdigit()` alone lets "²" through to int(); non-ASCII never reaches the compare.
        if not (lead.isascii() and lead.isdigit()) or len(lead) > 18 or not mac.isascii():
            return None
        ours = self._mac(int(lead)).encode()
        return int(lead) if hmac.compare_digest(mac.encode(), ours) else None

    def _mac(self, lead_id: int) -> str:
        digest = hmac.new(self.secret, f"unsub:{lead_id}".encode(), hashlib.sha256)
        return digest.hexdigest()[:32]
