// The danger zone: terminate only after typing the campaign id; then the steps the server
// took (from its answer) and the state changes as they arrive, until stopped.

import { api } from "./api.js";
import { errorBox } from "./dialog.js";
import { badge, h, timeTag, words } from "./dom.js";

const TERMINAL = ["stopped", "cancelled", "completed"];

function stepWords(type, data) {
  const list = (xs) => (xs && xs.length ? xs.join(", ") : "none");
  switch (type) {
    case "terminate.claims_stopped": return "Stopped claiming new work for this campaign";
    case "terminate.queued_cancelled": return `Cancelled calls still queued at the carrier: ${(data.calls || []).length}`;
    case "terminate.agents_released": return `Released agents: ${list(data.agents)}`;
    case "terminate.in_flight": return `Letting calls in flight end: ${(data.attempts || []).length}`;
    default: return words(type.replace(/^terminate\./, ""));
  }
}

export function dangerZone(campaignOf, { staff }) {
  const input = h("input", { id: "terminate-confirm", autocomplete: "off", spellcheck: "false" });
  const button = h("button", { type: "submit", class: "danger", disabled: true }, "Terminate campaign");
  const errors = h("div", { "aria-live": "assertive" });
  const steps = h("ol", { class: "steps", id: "terminate-steps", "aria-label": "Termination steps" });
  const stepsBox = h("div", { hidden: true }, h("h3", {}, "Steps taken"), steps);
  const idCode = h("code");
  const form = h("form", {},
    h("p", {}, "Terminating stops the campaign for good: no more calls or emails, queued calls are cancelled, calls in flight end normally. It cannot be resumed."),
    h("label", { for: "terminate-confirm" }, "Type the campaign id ", idCode, " to confirm"),
    h("div", { class: "row" }, h("div", { class: "spacer" }, input), button), errors);
  const done = h("p", { class: "muted", hidden: true });
  const el = h("section", { class: "panel danger-zone", "aria-labelledby": "danger-title" },
    h("h2", { id: "danger-title" }, "Danger zone"), form, done, stepsBox);
  const seen = new Set();

  input.addEventListener("input", () => { button.disabled = input.value.trim() !== campaignOf().id; });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errors.replaceChildren();
    button.disabled = true;
    const c = campaignOf();
    stepsBox.hidden = false;
    addStep("requested", ["Terminate requested"], 0);
    try {
      const out = await api("POST", `/api/v1/campaigns/${encodeURIComponent(c.id)}/terminate`, { confirm: input.value.trim() });
      for (const s of out.steps) addStep(`step:${s.step}`, [stepWords(s.step, s)], s.at);
      if (!TERMINAL.includes(out.campaign.state)) addStep("wait", ["Waiting for the campaign to stop…"], null, true);
    } catch (err) {
      errors.append(errorBox(err));
      button.disabled = false;
      steps.replaceChildren();
      seen.clear();
      stepsBox.hidden = true;
    }
  });

  function addStep(key, text, at, waiting = false) {
    if (seen.has(key)) return;
    seen.add(key);
    const li = h("li", { class: waiting ? "wait" : "", dataset: { step: key, at: at ?? Infinity } }, text, at ? timeTag(at, true) : null);
    const later = [...steps.children].find((x) => Number(x.dataset.at) > (at ?? Infinity) || x.classList.contains("wait"));
    if (later && !waiting) later.before(li);
    else steps.append(li);
  }

  // Live campaign.state events (state changes and terminate.* steps) while the panel shows.
  function event(d) {
    if (stepsBox.hidden) return;
    const at = d.at ? Date.parse(d.at) / 1000 : null;
    if (d.type && d.type.startsWith("terminate.")) addStep(`step:${d.type}`, [stepWords(d.type, {})], at);
    if (d.type === "campaign.state" && d.from_state !== d.to_state) {
      addStep(`state:${d.from_state}->${d.to_state}`, ["State ", badge(d.from_state), " → ", badge(d.to_state)], at);
    }
    if (TERMINAL.includes(d.campaign.state)) {
      const wait = steps.querySelector("li.wait");
      if (wait) wait.remove();
    }
  }

  function update(c) {
    idCode.textContent = c.id;
    const over = TERMINAL.includes(c.state) || c.state === "stopping";
    form.hidden = over || !staff;
    done.hidden = !over;
    done.textContent = c.state === "stopping"
      ? "The campaign is stopping: calls in flight are ending."
      : `The campaign is ${words(c.state)}. Nothing more can be done with it.`;
  }

  return { el, update, event };
}
