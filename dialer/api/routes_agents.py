"""Agent routes (docs/api.md §6). An agent sees and changes only itself (docs/architecture.md §13):
it may set its own state and read its own queue, and the list shows it only itself."""

from __future__ import annotations

from aiohttp import web

from dialer.api.auth import EVERYONE, STAFF, own_agent_only, principal, requires
from dialer.api.docs import doc, reply
from dialer.api.errors import ApiError, parse
from dialer.api.keys import RUNTIME
from dialer.api.schemas import AgentList, AgentOut, QueueOut
from dialer.api.schemas_in import AgentIn, AgentStateIn, PreviewIn
from dialer.usecases.accounts import Role
from dialer.usecases.agents import AgentOps

routes = web.RouteTableDef()


def ops(request: web.Request) -> AgentOps:
    return request.app[RUNTIME].service.agents


@routes.post("/api/v1/agents")
@requires(*STAFF)
@doc(
    "Register an agent (offline until it says otherwise)",
    body=AgentIn,
    response=AgentOut,
    status=201,
)
async def create(request: web.Request) -> web.Response:
    body = await parse(request, AgentIn)
    agent = await ops(request).create(body.name, agent_id=body.id)
    return reply(AgentOut.of(agent), 201)


@routes.get("/api/v1/agents")
@requires(*EVERYONE)
@doc(
    "Agents with their state, the campaign each serves and today's figures (calls "
    "handled, talk seconds, occupancy); an agent sees itself",
    response=AgentList,
)
async def list_(request: web.Request) -> web.Response:
    who = principal(request)
    if who.role is Role.AGENT:
        agents = [await ops(request).get(who.agent_id)] if who.agent_id else []
    else:
        agents = await ops(request).all()
    figures = await ops(request).figures(agents)
    return reply(AgentList(items=[AgentOut.of(a, figures[a.id]) for a in agents]))


@routes.post("/api/v1/agents/{id}/state")
@requires(Role.ADMIN, Role.SUPERVISOR, Role.AGENT)
@doc(
    "Set available, offline or break (available also ends a wrap-up); the agent itself, "
    "or a supervisor or admin. `force` (supervisor or admin): to available or offline from "
    "any state, ending the agent's call, hold or wrap-up",
    body=AgentStateIn,
    response=AgentOut,
)
async def set_state(request: web.Request) -> web.Response:
    agent_id = request.match_info["id"]
    own_agent_only(request, agent_id)
    body = await parse(request, AgentStateIn)
    who = principal(request)
    if body.force and who.role not in STAFF:
        raise ApiError(403, "forbidden", "only a supervisor or an admin may force a state")
    agent = await ops(request).set_state(
        agent_id, body.state, actor=who.actor, force=body.force, reason=body.reason
    )
    return reply(AgentOut.of(agent))


@routes.get("/api/v1/agents/{id}/queue")
@requires(*EVERYONE)
@doc("The agent's current call and its campaign's next leads", response=QueueOut)
async def queue(request: web.Request) -> web.Response:
    agent_id = request.match_info["id"]
    own_agent_only(request, agent_id)
    return reply(QueueOut.of(await ops(request).queue(agent_id)))


@routes.post("/api/v1/agents/{id}/dial")
@requires(Role.ADMIN, Role.SUPERVISOR, Role.AGENT)
@doc(
    "Preview mode: dial the previewed lead (or `lead_id`); the answer is bridged to this "
    "agent. 409 when the agent is not free, the campaign is not a running preview campaign "
    "(a paused one dials nothing) or the lead cannot be dialled now",
    body=PreviewIn,
    response=QueueOut,
    status=202,
)
async def dial(request: web.Request) -> web.Response:
    agent_id = request.match_info["id"]
    own_agent_only(request, agent_id)
    body = await parse(request, PreviewIn, optional=True)
    q = await ops(request).dial(agent_id, body.lead_id, actor=principal(request).actor)
    return reply(QueueOut.of(q), 202)


@routes.post("/api/v1/agents/{id}/skip")
@requires(Role.ADMIN, Role.SUPERVISOR, Role.AGENT)
@doc(
    "Preview mode: pass on the previewed lead (or `lead_id`); it is offered again after "
    "10 minutes. 409 when the agent is not free or the lead is not up for preview",
    body=PreviewIn,
    response=QueueOut,
)
async def skip(request: web.Request) -> web.Response:
    agent_id = request.match_info["id"]
    own_agent_only(request, agent_id)
    body = await parse(request, PreviewIn, optional=True)
    q = await ops(request).skip(agent_id, body.lead_id, actor=principal(request).actor)
    return reply(QueueOut.of(q))
