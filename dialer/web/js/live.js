// One EventSource for the whole page. The browser resumes with Last-Event-ID by itself;
// when the stream was closed for good (e.g. a 401), we reopen it and ask views to re-read.

const NAMES = ["campaign.state", "campaign.stats", "agent.state", "lead.state"];
const handlers = new Map(); // name -> Set(fn)
let source = null;
let retry = null;
let status = () => {};

export function onStatus(fn) {
  status = fn;
}

export function on(name, fn) {
  if (!handlers.has(name)) handlers.set(name, new Set());
  handlers.get(name).add(fn);
  return () => handlers.get(name).delete(fn);
}

function emit(name, data) {
  for (const fn of [...(handlers.get(name) || [])]) {
    try {
      fn(data);
    } catch (exc) {
      console.error(`live handler for ${name} failed`, exc);
    }
  }
}

export function connect() {
  if (source) return;
  source = new EventSource("/api/v1/events");
  let opened = false;
  source.onopen = () => {
    status("on");
    if (opened) emit("resync", {});
    opened = true;
  };
  source.onerror = () => {
    if (source && source.readyState === EventSource.CLOSED) {
      status("off");
      source = null;
      clearTimeout(retry);
      retry = setTimeout(() => {
        connect();
        emit("resync", {});
      }, 3000);
    } else {
      status("off");
    }
  };
  for (const name of NAMES) {
    source.addEventListener(name, (ev) => emit(name, JSON.parse(ev.data)));
  }
}

export function disconnect() {
  clearTimeout(retry);
  if (source) source.close();
  source = null;
  status("idle");
}
