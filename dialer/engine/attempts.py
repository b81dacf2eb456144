"""The attempt lifecycle: every change of an attempt's status goes through `set_status`.

Status only moves forward (domain/states.py: `attempt_advances`): a late or duplicated
report changes nothing, a final status is never left (but `sent` may become `bounced`).
"""

from __future__ import annotations

from dialer.domain.states import AttemptStatus, attempt_advances
from dialer.store.models import Attempt


def set_status(attempt: Attempt, new: AttemptStatus, at: float, now: float) -> bool:
    """Apply a status that happened at `at` (the carrier's time) if it moves the attempt
    forward, with its history; False when it does not (duplicate, late, or after a final
    status)."""
    if not attempt_advances(AttemptStatus(attempt.status), new):
        return False
    attempt.status = new
    attempt.updated_at = now
    attempt.history = [*attempt.history, {"status": new, "at": at}]
    return True
