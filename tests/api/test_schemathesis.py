"""Schemathesis against the live test server: generated requests (valid and invalid) with an
admin token; no 5xx, and every answer is what the OpenAPI document says (status, content type,
body schema).

The server runs on the test's event loop; schemathesis (sync, `requests`) runs in a worker
thread so the loop stays free to answer. Path ids are half generated, half real ids of
objects created first, so handlers get past their 404 and the state machines get exercised.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dialer.api.openapi import build_openapi
from tests.api.conftest import BOOTSTRAP, Api
from tests.harness import leads

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 15}
MIN_REQUESTS = 1000
STREAMS = "text/event-stream"


@dataclass
class Run:
    base_url: str
    pools: dict[str, list[str]]  # path segment before `{id}` -> real ids
    requests: int = 0
    failures: dict[tuple[str, str], str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def id_pool(run: Run, path: str) -> list[str]:
    parts = path.strip("/").split("/")
    return next(
        (run.pools.get(parts[i - 1], []) for i, p in enumerate(parts) if p == "{id}" and i), []
    )


def fuzz(run: Run, op: Any, mode: GenerationMode, session: requests.Session) -> None:
    strategy = op.as_strategy(generation_mode=mode)
    pool = id_pool(run, op.path)
    if pool and mode is GenerationMode.POSITIVE:
        real = st.sampled_from(pool).flatmap(
            lambda pid: op.as_strategy(generation_mode=mode, path_parameters={"id": pid})
        )
        strategy = st.one_of(strategy, real)
    auth = {"Authorization": f"Bearer {BOOTSTRAP}"}

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        response = case.call(base_url=run.base_url, session=session, headers=auth, timeout=10)
        with run.lock:
            run.requests += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=auth)
        except (AssertionError, BaseExceptionGroup) as exc:
            parts = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
            kinds = ", ".join(sorted({getattr(e, "title", None) or repr(e) for e in parts}))
            text = "\n".join(str(e) for e in parts)
            run.failures.setdefault(
                (op.label, kinds), f"{kinds}\n{text}\n{case.as_curl_command(headers=auth)}"
            )

    try:
        check()
    except Unsatisfiable:
        # Nothing to negate: every input the operation takes accepts any value.
        if mode is not GenerationMode.NEGATIVE:
            raise


def run_all(run: Run, document: dict[str, Any], on_stream: Callable[[str], None]) -> None:
    schema = schemathesis.openapi.from_dict(document)
    with requests.Session() as session:
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result
            op = result.ok()
            success = document["paths"][op.path][op.method.lower()]["responses"]
            if any(STREAMS in r.get("content", {}) for r in success.values()):
                on_stream(op.path)  # an endless body: checked once below, not fuzzed
                continue
            for mode in EXAMPLES:
                fuzz(run, op, mode, session)


async def seed(api: Api) -> dict[str, list[str]]:
    campaigns = [await api.campaign(name=f"C{i}") for i in range(3)]
    ids = [c["id"] for c in campaigns]
    service = api.runtime.service
    for cid in ids:
        await service.leads.add(cid, leads(4, start=100 * ids.index(cid)))
    await service.start(ids[1], actor="admin:test")
    await service.start(ids[2], actor="admin:test")
    await service.pause(ids[2], actor="admin:test")
    lead_ids = []
    for cid in ids:
        items, _ = await service.leads.page(cid, limit=10)
        lead_ids += [str(lead.id) for lead in items]
    return {"campaigns": ids, "leads": lead_ids, "agents": ["a1"], "tokens": []}


@pytest.mark.timeout(420)
async def test_generated_requests_conform(api: Api) -> None:
    document = build_openapi(api.client.app)
    base_url = str(api.client.server.make_url("")).rstrip("/")
    run = Run(base_url, await seed(api))
    streams: list[str] = []
    # A hang guard only: 40 s alone, 2-3 times that beside the suite's other processes.
    await asyncio.wait_for(asyncio.to_thread(run_all, run, document, streams.append), 360)
    for path in streams:
        async with api.client.get(path, headers=api.auth()) as resp:
            assert resp.status == 200 and resp.content_type == STREAMS, path
    report = "\n\n".join(f"{op}: {text}" for (op, _), text in sorted(run.failures.items()))
    assert not run.failures, f"{len(run.failures)} distinct failures:\n\n{report}"
    assert run.requests >= MIN_REQUESTS, run.requests
    print(f"schemathesis: {run.requests} requests")
