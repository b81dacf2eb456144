// The big pause / play button. It changes shape only when the server says the state changed
// (a campaign.state event, or a fresh GET): after a click it waits, never guesses.

import { api } from "./api.js";
import { errorBox, formDialog } from "./dialog.js";
import { badge, h, icon, localToIso, replace, when } from "./dom.js";

const TERMINAL = ["stopped", "cancelled", "completed"];
const SETTLE_MS = 4000; // if no event confirms by then, re-read the campaign from the server

export function controlPanel(campaignOf, { staff, onResult, reload }) {
  const button = h("button", { type: "button", class: "bigbtn", id: "control" });
  const stateLine = h("div", { class: "state-line", role: "status", "aria-live": "polite" });
  const detail = h("div", { class: "small muted" });
  const feedback = h("div", { "aria-live": "assertive" });
  const el = h("section", { class: "panel control", "aria-label": "Campaign control" },
    button, h("div", { class: "control-text" }, stateLine, detail), feedback);
  let pending = null; // {from, timer}
  button.addEventListener("click", () => {
    const c = campaignOf();
    if (c.state === "running") pauseDialog(c);
    else if (c.state === "paused" || c.state === "draft" || c.state === "scheduled") resumeDialog(c);
  });

  function wait(from, text) {
    clearTimeout(pending && pending.timer);
    const settle = async () => {
      try {
        await reload();
      } catch (err) {
        feedback.append(errorBox(err));
      }
      if (pending) {
        pending = null;
        render(campaignOf(), null);
      }
    };
    pending = { from, timer: setTimeout(settle, SETTLE_MS) };
    render(campaignOf(), text);
  }

  async function pauseDialog(c) {
    const reason = h("input", { id: "pause-reason", name: "reason", maxlength: 500, placeholder: "e.g. script change" });
    const out = await formDialog({
      title: `Pause “${c.name}”?`,
      body: [h("p", {}, "Nothing more is dialled or sent once the server confirms. Calls already connected finish normally and agents are released."),
        h("label", { for: "pause-reason" }, "Reason (optional)"), reason],
      confirm: "Pause campaign",
      submit: () => api("POST", `/api/v1/campaigns/${encodeURIComponent(c.id)}/pause`, reason.value ? { reason: reason.value } : {}),
    });
    if (!out) return;
    onResult({ kind: "pause", in_flight: out.in_flight.length, released: out.released_agents });
    wait("running", "Pausing… waiting for the server to confirm");
  }

  async function resumeDialog(c) {
    const verb = c.state === "paused" ? "Resume" : "Start";
    const now = h("input", { type: "radio", name: "when", id: "when-now", value: "now", checked: true });
    const later = h("input", { type: "radio", name: "when", id: "when-at", value: "at" });
    const at = h("input", { type: "datetime-local", id: "resume-at", name: "at", "aria-label": `${verb} at` });
    const out = await formDialog({
      title: `${verb} “${c.name}”?`,
      body: [h("p", {}, c.state === "paused" ? "Dialling picks up where it stopped." : "Dialling begins."),
        h("label", { class: "choice", for: "when-now" }, now, `${verb} now`),
        h("label", { class: "choice", for: "when-at" }, later, `${verb} at a date and time`), at],
      confirm: verb,
      submit: () => {
        const body = {};
        if (later.checked) {
          body.at = localToIso(at.value);
          if (!body.at) throw new Error("Choose the date and time to resume at.");
        }
        const path = c.state === "paused" ? "resume" : "start";
        return api("POST", `/api/v1/campaigns/${encodeURIComponent(c.id)}/${path}`, body);
      },
    });
    if (!out) return;
    if (later.checked) reload().catch((err) => feedback.append(errorBox(err)));
    else wait(c.state, `${verb === "Resume" ? "Resuming" : "Starting"}… waiting for the server to confirm`);
  }

  function render(c, waiting) {
    feedback.replaceChildren();
    const terminal = TERMINAL.includes(c.state) || c.state === "stopping";
    const playable = ["paused", "draft", "scheduled"].includes(c.state);
    button.hidden = terminal || !staff;
    if (!terminal) {
      const kind = c.state === "running" ? "pause" : "play";
      button.className = `bigbtn ${kind}`;
      replace(button, icon(kind));
      const label = c.state === "running" ? "Pause campaign" : c.state === "paused" ? "Resume campaign" : "Start campaign";
      button.setAttribute("aria-label", label);
      button.title = label;
      button.dataset.action = kind;
      button.disabled = Boolean(waiting) || (!playable && c.state !== "running");
    }
    replace(stateLine, waiting ? [h("span", { class: "spinner", "aria-hidden": "true" }), waiting] : ["Campaign is ", badge(c.state)]);
    const notes = [];
    if (c.state === "running" && c.started_at) notes.push(`Running since ${when(c.started_at)}.`);
    if (c.state === "paused" && c.paused_at) notes.push(`Paused since ${when(c.paused_at)}.`);
    if (c.scheduled_at) notes.push(`${c.state === "paused" ? "Resumes" : "Starts"} by itself at ${when(c.scheduled_at)}.`);
    if (c.state === "stopping") notes.push("Stopping: waiting for calls in flight to end.");
    if (TERMINAL.includes(c.state)) notes.push(`Ended ${when(c.ended_at)}. This cannot be undone.`);
    const p = c.pacing;
    replace(detail, h("div", {}, notes.join(" ")),
      h("div", {}, `Pacing ${p.mode} · ${p.lines_per_agent} lines per agent · ${p.calls_per_second} calls/s · abandon cap ${(p.max_abandon_rate * 100).toFixed(1)} % · ${c.agent_ids.length} agents`));
  }

  function update(c) {
    if (pending && c.state !== pending.from) {
      clearTimeout(pending.timer);
      pending = null;
    }
    render(c, pending ? stateLine.textContent : null);
  }

  return { el, update };
}
