// What holds a campaign back: a red banner when one of its channels is down (the engine's
// campaign.channel_unavailable report, docs/api.md §4.5), and, while it is stopping, what it
// still waits for (GET /campaigns/{id} `waiting_for`).

import { h, num, replace, seconds, words } from "./dom.js";

const CHANNEL_WORDS = {
  voice: ["Voice carrier", "dialling held"],
  email: ["Email server", "sending held"],
};

// HH:MM (or HH:MM:SS) on a 24-hour clock, in the browser's zone.
const clock = (value, withSeconds = false) => new Date(value).toLocaleTimeString(undefined,
  { hour: "2-digit", minute: "2-digit", second: withSeconds ? "2-digit" : undefined, hourCycle: "h23" });

export function channelBanner() {
  const el = h("div", { class: "channel-alert", id: "channel-alert", role: "alert", hidden: true });

  function update(channels) {
    const down = Object.entries(channels || {}).filter(([, st]) => !st.up);
    el.hidden = down.length === 0;
    replace(el, down.map(([name, st]) => {
      const [what, held] = CHANNEL_WORDS[name] || [`${words(name)} channel`, "held"];
      const since = st.since ? ` since ${clock(st.since)}` : "";
      const retry = st.retry_at ? ` (next try ${clock(st.retry_at, true)})` : "";
      return h("div", { dataset: { channel: name } },
        h("strong", {}, `${what} unreachable${since}`), ` — ${held}, retrying${retry}.`,
        st.error ? h("div", { class: "small mono" }, st.error) : null);
    }));
  }

  return { el, update };
}

export function waitingPanel() {
  const body = h("div");
  const el = h("section", { class: "panel waiting", id: "waiting-for", "aria-labelledby": "waiting-title", hidden: true },
    h("h2", { id: "waiting-title" }, "Stopping: still waiting for"), body);

  function update(c) {
    const w = c.state === "stopping" ? c.waiting_for : null;
    el.hidden = !w;
    if (!w) return;
    const parts = Object.entries(w.by_status).map(([status, n]) => `${num(n)} ${words(status)}`);
    const lines = [
      h("p", { dataset: { figure: "waiting_attempts" } },
        w.attempts ? `${num(w.attempts)} attempt${w.attempts === 1 ? "" : "s"} in flight: ${parts.join(", ")}.` : "Nothing in flight: stopping on the next tick."),
    ];
    if (w.oldest_age_seconds !== null) lines.push(h("p", { class: "small" }, `Oldest started ${seconds(w.oldest_age_seconds)} ago.`));
    lines.push(h("p", { class: "small", id: "waiting-agents" }, w.agents.length
      ? `Agents held or on a call: ${w.agents.map((a) => `${a.name} (${words(a.state)})`).join(", ")}.`
      : "No agent is held."));
    if (w.expected_by) {
      lines.push(h("p", { class: "small muted" },
        `If no carrier report ends them first, the engine resolves the last by ${clock(w.expected_by, true)}.`));
    }
    replace(body, lines);
  }

  return { el, update };
}
