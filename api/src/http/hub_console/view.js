// Small helpers the console's pages share: building elements, formatting
// times and numbers, and saying what an error code means in plain words.

/** `h("button", { type: "button", onclick }, "Start")`: an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** A timestamp in the reader's locale, or a dash. */
export function when(timestamp) {
  return timestamp ? new Date(timestamp).toLocaleString() : "—";
}

/** Seconds as "4 s", "3 min 20 s" or "2 h 5 min". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const WORDS = {
  NAME_TAKEN: "Another project already has this name (or one that gives the same slug). Pick another name.",
  CONFLICT: "Someone else changed this project in the meantime.",
  INVALID_TRANSITION: "The project cannot do that in its current state.",
  INVALID_INPUT: "The hub did not accept what was sent.",
  NOT_FOUND: "The hub does not know it (it may have been deleted).",
  UNAUTHENTICATED: "The hub needs its API token for this.",
  UNAVAILABLE: "The hub's database is unavailable right now; try again shortly.",
  RESYNC_REQUIRED: "The hub cannot continue from where this page was; it starts afresh.",
  TOO_MANY_SUBSCRIPTIONS: "This page has too many live views open on the hub.",
  OFFLINE: "The hub cannot be reached; the page retries by itself.",
};

/** An error from the hub in words a person can act on, with its code. */
export function explain(err) {
  const code = err?.code ?? "ERROR";
  const words = WORDS[code];
  const detail = err?.message ?? String(err);
  return words ? `${words} (${code}: ${detail})` : `${detail} (${code})`;
}

/** Shows `text` in the live region `el`, as an error when `error`. */
export function say(el, text, error = false) {
  el.textContent = text;
  el.classList.toggle("error", error);
}

/** JSON, indented. */
export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

/** Calls `refresh` now and every `ms` while shown: `{ show, hide }`. */
export function every(ms, refresh) {
  let timer = null;
  return {
    show() {
      refresh();
      timer ??= setInterval(refresh, ms);
    },
    hide() {
      clearInterval(timer);
      timer = null;
    },
  };
}
