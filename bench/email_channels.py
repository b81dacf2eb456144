"""Messages/s of the email channels on their own, at a few concurrencies (issue 11).

- `mime`: `build_message` alone (what every send pays before any I/O);
- `maildir`: `MaildirEmail.send` into a temp directory (write to tmp/, rename into new/, in a
  worker thread);
- `smtp`: `SmtpEmail.send` to a local aiosmtpd that counts and discards, in a process of its
  own so that it does not share this one's interpreter; the pool has as many connections as
  there are sends at once (`--pool` to fix it).

Each row sends `--messages` messages, `concurrency` of them in flight at a time (one task
per slot pulling the next message). `ok` says whether every message arrived (files in
`new/`, messages counted by the server) and every Message-ID is distinct.

    .venv/bin/python bench/email_channels.py
    .venv/bin/python bench/email_channels.py --messages 5000 --concurrency 1,16 --pool 4
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

from common import emit_json, print_table

from dialer.channels.base import EmailMessage
from dialer.channels.maildir import MaildirEmail
from dialer.channels.mime import build_message, new_message_id
from dialer.channels.smtp import SmtpEmail
from dialer.clock import SystemClock


def messages(n: int, run: str) -> list[EmailMessage]:
    return [
        EmailMessage(
            attempt_id=str(i),
            idempotency_key=f"{run}-{i}",
            campaign_id="bench",
            to=f"lead{i}@example.org",
            sender="sales@dialer.test",
            sender_name="Ada from Sales",
            subject=f"Hello Lead {i}, about your account",
            body=f"Hi Lead {i},\n\nshall we talk this week?\n\nAda\n" * 3,
            unsubscribe_url=f"https://dialer.test/u/{i}.0123456789abcdef0123456789abcdef",
        )
        for i in range(n)
    ]


async def drive(
    send: Callable[[EmailMessage], Awaitable[str]], batch: list[EmailMessage], concurrency: int
) -> tuple[float, list[str]]:
    """Wall seconds to send `batch` with `concurrency` sends in flight; the Message-IDs."""
    todo = iter(batch)
    ids: list[str] = []

    async def worker() -> None:
        for msg in todo:  # one shared iterator: each message is taken once
            ids.append(await send(msg))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, ids


def bench_mime(n: int) -> float:
    batch = messages(n, "mime")
    now = SystemClock().utcnow()
    start = time.perf_counter()
    for msg in batch:
        build_message(msg, new_message_id(msg), now)
    return n / (time.perf_counter() - start)


async def bench_maildir(n: int, concurrency: int) -> tuple[float, bool]:
    with tempfile.TemporaryDirectory(prefix="dialer-bench-mail-") as tmp:
        channel = MaildirEmail(Path(tmp), SystemClock())
        seconds, ids = await drive(channel.send, messages(n, f"md{concurrency}"), concurrency)
        await channel.close()
        ok = len(os.listdir(Path(tmp) / "new")) == n and len(set(ids)) == n
    return n / seconds, ok


class _Counter:
    """The aiosmtpd handler of the server process: counts messages, keeps none."""

    def __init__(self, count: Synchronized[int]) -> None:
        self.count = count

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.count.get_lock():
            self.count.value += 1
        return "250 OK"


def _serve(port: int, count: Synchronized[int], stop: MpEvent) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(_Counter(count), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        stop.wait()
    finally:
        controller.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the SMTP server on port {port} did not start")


async def bench_smtp(
    port: int, count: Synchronized[int], n: int, concurrency: int, pool: int
) -> tuple[float, bool]:
    before = count.value
    channel = SmtpEmail(f"smtp://127.0.0.1:{port}", SystemClock(), pool_size=pool)
    seconds, ids = await drive(channel.send, messages(n, f"smtp{concurrency}"), concurrency)
    await channel.close()
    return n / seconds, count.value - before == n and len(set(ids)) == n


async def run(args: argparse.Namespace, port: int, count: Synchronized[int]) -> None:
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    rows: list[list[Any]] = []
    results: list[dict[str, Any]] = []
    ok = True

    def record(channel: str, concurrency: int, pool: int | None, per_s: float, held: bool) -> None:
        nonlocal ok
        ok = ok and held
        rows.append(
            [
                channel,
                concurrency,
                "-" if pool is None else pool,
                round(per_s),
                "yes" if held else "NO",
            ]
        )
        results.append(
            {"channel": channel, "concurrency": concurrency, "pool": pool, "per_s": round(per_s)}
        )

    record("mime", 1, None, bench_mime(args.messages), True)
    for c in levels:
        per_s, held = await bench_maildir(args.messages, c)
        record("maildir", c, None, per_s, held)
    for c in levels:
        pool = args.pool or c
        per_s, held = await bench_smtp(port, count, args.messages, c, pool)
        record("smtp", c, pool, per_s, held)
    print_table(["channel", "concurrency", "pool", "messages/s", "all delivered"], rows)
    emit_json("email_channels", messages=args.messages, results=results, ok=ok)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages per row")
    parser.add_argument("--concurrency", default="1,4,16", help="comma list of sends in flight")
    parser.add_argument("--pool", type=int, default=0, help="SMTP connections (0: = concurrency)")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    count: Synchronized[int] = ctx.Value("q", 0)
    stop = ctx.Event()
    port = free_port()
    server = ctx.Process(target=_serve, args=(port, count, stop), daemon=True)
    server.start()
    try:
        wait_listening(port)
        asyncio.run(run(args, port, count))
    finally:
        stop.set()
        server.join(10)


if __name__ == "__main__":
    main()
