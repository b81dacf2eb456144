"""The login limiter (docs/api.md §2, docs/architecture.md §13).

Three counters of failed password checks, each with its own allowance and then growing
delays (1 s, 2 s, 4 s … up to a cap), forgotten after a quiet spell:

- **(address, account)**: one client guessing one password;
- **address**: one client spraying many accounts;
- **account**: many clients on one account. An address the account logged in from before is
  exempt from this one, so an attacker elsewhere cannot make the real user wait.

A slot is *reserved* before the password is checked, counted as a failure until the check
says otherwise: concurrent guesses cannot all pass while the first is still hashing. A
refusal is a 429 with Retry-After, never a lock: the wait is at most the cap.

The state is in-process (docs/architecture.md §13 says why); it is bounded, oldest first.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_KEYS = 50_000  # counters kept; the oldest go first
MAX_KNOWN_PER_ACCOUNT = 16  # addresses remembered per account
KNOWN_SECONDS = 30 * 86400.0  # how long a successful address stays exempt
CHECKS = 4  # password checks (scrypt: CPU and 16 MiB each) running at once
MAX_WAITING_CHECKS = 64  # beyond this many queued, a login is refused at once


@dataclass(frozen=True, slots=True)
class Policy:
    allowance: int  # failures before any delay
    cap: float  # the longest delay, seconds
    forget: float  # a counter with no failure for this long starts again
    base: float = 1.0  # the first delay; each further failure doubles it

    def delay(self, failures: int) -> float:
        if failures < self.allowance:
            return 0.0
        return float(min(self.cap, self.base * 2 ** min(failures - self.allowance, 30)))


PAIR = Policy(allowance=5, cap=300.0, forget=900.0)
ADDRESS = Policy(allowance=20, cap=300.0, forget=900.0)
ACCOUNT = Policy(allowance=10, cap=60.0, forget=900.0)


@dataclass(slots=True)
class _Counter:
    failures: int = 0
    pending: int = 0
    last: float = 0.0  # the last failure
    next_at: float = 0.0  # no check before this


@dataclass(frozen=True, slots=True)
class Refusal:
    scope: str  # pair, address, account or busy
    retry_after: float


@dataclass(slots=True)
class Ticket:
    address: str
    account: str
    keys: list[tuple[str, Policy]] = field(default_factory=list)
    done: bool = False


class LoginLimiter:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        pair: Policy = PAIR,
        address: Policy = ADDRESS,
        account: Policy = ACCOUNT,
        checks: int = CHECKS,
        max_waiting: int = MAX_WAITING_CHECKS,
    ) -> None:
        self._clock = clock
        self.pair, self.address, self.account = pair, address, account
        self._counters: OrderedDict[str, _Counter] = OrderedDict()
        self._known: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()
        self._checks = asyncio.Semaphore(checks)
        self._waiting = 0
        self._max_waiting = max_waiting

    # -- the three counters ----------------------------------------------------------------
    def reserve(self, address: str, account: str) -> Ticket | Refusal:
        """A slot for one password check of `account` from `address`, or why not now."""
        now = self._clock()
        account = account.casefold()
        keys = [(f"pair|{address}|{account}", self.pair), (f"addr|{address}", self.address)]
        if not self._is_known(account, address, now):
            keys.append((f"acct|{account}", self.account))
        for key, policy in keys:
            wait = self._wait(self._counter(key, policy, now), policy, now)
            if wait > 0:
                return Refusal(key.split("|", 1)[0], wait)
        for key, policy in keys:
            self._counter(key, policy, now).pending += 1
        self._trim()
        return Ticket(address, account, keys)

    def failed(self, ticket: Ticket) -> None:
        """The password was wrong: the reserved slot becomes a failure, and the next try
        of each counter waits its delay."""
        if ticket.done:
            return
        ticket.done = True
        now = self._clock()
        for key, policy in ticket.keys:
            c = self._counter(key, policy, now)
            c.pending = max(0, c.pending - 1)
            c.failures += 1
            c.last = now
            c.next_at = max(c.next_at, now + policy.delay(c.failures))

    def succeeded(self, ticket: Ticket) -> None:
        """Right password: the pair and the account start again and the address is known to
        the account. The address counter is not reset (a client could otherwise clear it by
        logging into an account of its own between guesses)."""
        if ticket.done:
            return
        ticket.done = True
        now = self._clock()
        for key, policy in ticket.keys:
            if key.startswith(("pair|", "acct|")):
                self._counters.pop(key, None)
            else:
                c = self._counter(key, policy, now)
                c.pending = max(0, c.pending - 1)
        known = self._known.setdefault(ticket.account, OrderedDict())
        known[ticket.address] = now
        known.move_to_end(ticket.address)
        while len(known) > MAX_KNOWN_PER_ACCOUNT:
            known.popitem(last=False)
        self._known.move_to_end(ticket.account)
        while len(self._known) > MAX_KEYS:
            self._known.popitem(last=False)

    def cancelled(self, ticket: Ticket) -> None:
        """No verdict (the database was down, the client left): the slot is given back."""
        if ticket.done:
            return
        ticket.done = True
        now = self._clock()
        for key, policy in ticket.keys:
            c = self._counter(key, policy, now)
            c.pending = max(0, c.pending - 1)

    # -- the password checks themselves ----------------------------------------------------
    async def check(self, work: Callable[[], Awaitable[T]]) -> T | Refusal:
        """Run `work` (a password check) with at most `checks` at once; a Refusal when too
        many are queued already (a flood spread over many accounts and addresses)."""
        if self._checks.locked() and self._waiting >= self._max_waiting:
            return Refusal("busy", 1.0)
        self._waiting += 1
        try:
            await self._checks.acquire()
        finally:
            self._waiting -= 1
        try:
            return await work()
        finally:
            self._checks.release()

    # -- internals -------------------------------------------------------------------------
    def _counter(self, key: str, policy: Policy, now: float) -> _Counter:
        c = self._counters.get(key)
        if c is None:
            c = self._counters[key] = _Counter()
        elif c.pending == 0 and c.failures and now - c.last > policy.forget:
            c.failures, c.next_at = 0, 0.0
        self._counters.move_to_end(key)
        return c

    @staticmethod
    def _wait(c: _Counter, policy: Policy, now: float) -> float:
        if now < c.next_at:
            return c.next_at - now
        if c.failures + c.pending < policy.allowance:
            return 0.0
        # Past the allowance one check at a time: the next waits for this one's verdict.
        return policy.base if c.pending else 0.0

    def _is_known(self, account: str, address: str, now: float) -> bool:
        known = self._known.get(account)
        seen = None if known is None else known.get(address)
        return seen is not None and now - seen <= KNOWN_SECONDS

    def _trim(self) -> None:
        while len(self._counters) > MAX_KEYS:
            self._counters.popitem(last=False)


# -- who is asking ---------------------------------------------------------------------------
def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """DIALER_TRUSTED_PROXIES' entries (addresses or CIDR blocks); ValueError names a bad one."""
    out: list[Network] = []
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {text!r}") from None
    return tuple(out)


def _address(text: str) -> Address | None:
    try:
        addr = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _key(addr: Address) -> str:
    # One IPv6 client usually holds a whole /64: count the block, not each address in it.
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: tuple[Network, ...]
) -> str:
    """The address a login is counted against: the peer, unless the peer is a trusted proxy;
    then the nearest address in X-Forwarded-For that is not one (proxies append, so
    everything left of the first untrusted hop could be made up by the client)."""
    addr = _address(peer or "")
    if addr is None:
        return peer or "-"  # a Unix socket: one local client
    if not any(addr in net for net in trusted):
        return _key(addr)
    hops = [hop for line in forwarded_for for hop in line.split(",")]
    for hop in reversed(hops):
        found = _address(hop)
        if found is None:
            break  # garbage from here on: count the last proxy we trust
        addr = found
        if not any(found in net for net in trusted):
            break
    return _key(addr)
