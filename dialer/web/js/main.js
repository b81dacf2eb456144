// Entry point: who is logged in, the hash router, the top bar.

import { api, onUnauthorized, session } from "./api.js";
import { hideBanner, showBanner } from "./dialog.js";
import { h, replace } from "./dom.js";
import * as live from "./live.js";
import { agentView } from "./agent.js";
import { agentsView } from "./agents.js";
import { campaignView } from "./campaign.js";
import { campaignsView } from "./campaigns.js";
import { loginView } from "./login.js";

const app = document.getElementById("app");
let cleanups = [];

// What a view gets: a way to listen to live events that stops when the view goes away.
function context() {
  return {
    live(name, fn) { cleanups.push(live.on(name, fn)); },
    onLeave(fn) { cleanups.push(fn); },
  };
}

function leave() {
  for (const fn of cleanups) fn();
  cleanups = [];
}

function home() {
  return session.me && session.me.role === "agent" ? "#/agent" : "#/campaigns";
}

function renderNav() {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  if (!session.me) {
    nav.replaceChildren();
    who.replaceChildren();
    return;
  }
  const links = session.me.role === "agent"
    ? [["#/agent", "My work"]]
    : [["#/campaigns", "Campaigns"], ["#/agents", "Agents"]];
  const here = location.hash || home();
  replace(nav, links.map(([href, text]) =>
    h("a", { href, "aria-current": here.startsWith(href) ? "page" : null }, text)));
  replace(who,
    h("span", {}, `${session.me.username} · ${session.me.role}`),
    h("button", { type: "button", class: "sm", onclick: logout }, "Log out"));
}

async function logout() {
  try {
    await api("POST", "/api/v1/auth/logout");
  } catch (err) {
    showBanner(err);
  }
  session.me = session.csrf = null;
  live.disconnect();
  location.hash = "#/login";
}

async function route() {
  leave();
  hideBanner();
  const hash = location.hash || "";
  if (!session.me && hash !== "#/login") {
    location.hash = "#/login";
    return;
  }
  renderNav();
  const ctx = context();
  const [, page, id] = hash.split("/");
  try {
    if (page === "login") await loginView(app, { onLogin: (me) => { signedIn(me); location.hash = home(); } });
    else if (page === "campaigns" && id) await campaignView(app, ctx, decodeURIComponent(id));
    else if (page === "campaigns") await campaignsView(app, ctx);
    else if (page === "agents" && id) await agentView(app, ctx, decodeURIComponent(id));
    else if (page === "agents") await agentsView(app, ctx);
    else if (page === "agent") await agentView(app, ctx, session.me.agent_id);
    else location.hash = home();
  } catch (err) {
    replace(app, h("div", { class: "panel" }, h("h1", {}, "Could not load this page")));
    showBanner(err);
  }
}

function signedIn(me) {
  session.me = me;
  session.csrf = me.csrf_token;
  live.connect();
}

live.onStatus((s) => {
  const el = document.getElementById("live");
  el.className = `live ${s}`;
  el.textContent = s === "on" ? "live" : s === "off" ? "reconnecting…" : "";
});

onUnauthorized(() => {
  if (!session.me) return;
  session.me = session.csrf = null;
  live.disconnect();
  location.hash = "#/login";
});

async function start() {
  try {
    const me = await api("GET", "/api/v1/auth/me");
    if (me.via === "session") signedIn(me);
  } catch {
    // not logged in: the router shows the login page
  }
  window.addEventListener("hashchange", route);
  await route();
}

start();
