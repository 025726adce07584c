// Events: a live tail of the `events` subscription, filtered by subject
// pattern, types and correlation id. It starts where the project board's
// first snapshot was read (so it shows everything since the console
// opened) and always resumes after the last event it received: pausing,
// changing nothing and resuming, or a hub restart, loses none.

import { request, socket } from "./client.js";
import { firstCursor } from "./projects.js";
import { explain, h, pretty, say, when } from "./view.js";

const ENVELOPE = `id cursor subject eventType eventVersion aggregateType aggregateId sequence
  position correlationId causationId origin { hubId service user } payload timestamp`;

const TAIL = `subscription ($filter: EventFilter, $after: String) {
  events(filter: $filter, after: $after) { ${ENVELOPE} }
}`;

/** Most events kept in the tail (the oldest go first). */
const KEEP = 500;

const tail = { events: [], seen: new Set(), start: null, after: null, filter: {}, stop: null, paused: false, wired: false };
let visible = false;

function filterFromForm() {
  const subject = document.getElementById("filter-subject").value.trim();
  const types = document.getElementById("filter-types").value.split(",").map((t) => t.trim()).filter(Boolean);
  const correlation = document.getElementById("filter-correlation").value.trim();
  const filter = {};
  if (subject) filter.subject = subject;
  if (types.length) filter.eventTypes = types;
  if (correlation) filter.correlationId = correlation;
  return filter;
}

function state() {
  const text = tail.paused
    ? `Paused after ${tail.events.length} events; Resume continues after the last one shown, missing none.`
    : `Live: ${tail.events.length} events shown.`;
  document.getElementById("tail-state").textContent = text;
  document.getElementById("page-events").dataset.tail = tail.stop ? "live" : "stopped";
}

function subscribe() {
  const message = document.getElementById("events-message");
  tail.stop?.();
  tail.stop = socket.subscribe(TAIL, () => ({ filter: tail.filter, after: tail.after }), {
    next: ({ data, errors }) => {
      if (errors?.length) {
        say(message, explain({ code: errors[0].extensions?.code, message: errors[0].message }), true);
        return;
      }
      receive(data.events);
    },
    error: (error) => {
      tail.stop = null;
      say(message, `The tail stopped: ${explain({ code: error.extensions?.code, message: error.message })}`, true);
      state();
    },
    complete: () => {
      tail.stop = null;
      state();
    },
  });
  say(message, "");
  state();
}

function receive(event) {
  if (tail.seen.has(event.id)) return;
  tail.seen.add(event.id);
  tail.after = event.cursor;
  tail.events.unshift(event);
  if (tail.events.length > KEEP) tail.events.pop();
  if (visible) {
    const body = document.getElementById("events-body");
    body.prepend(row(event));
    while (body.children.length > KEEP) body.lastElementChild.remove();
  }
  state();
}

function row(event) {
  return h("tr", { dataset: { id: event.id, type: event.eventType } },
    h("td", {}, h("button", { type: "button", class: "link", "aria-label": `Show event ${event.position}, ${event.eventType}`, onclick: () => detail(event) }, event.position)),
    h("td", {}, when(event.timestamp)),
    h("td", { class: "type" }, event.eventType),
    h("td", { class: "subject" }, event.subject),
    h("td", {}, event.correlationId ?? "—"),
  );
}

async function detail(event) {
  const aside = document.getElementById("event-detail");
  const { payload, ...envelope } = event;
  const chain = h("ol", { class: "chain" }, h("li", { class: "muted" }, "Loading…"));
  const project = h("p", { class: "muted" }, event.aggregateType === "Project" ? "Loading…" : "Not a project's event.");
  aside.replaceChildren(
    h("h3", {}, `${event.eventType} #${event.position}`),
    h("h4", {}, "Envelope"), h("pre", { class: "envelope", tabindex: "0" }, pretty(envelope)),
    h("h4", {}, "Payload"), h("pre", { class: "payload", tabindex: "0" }, pretty(payload)),
    h("h4", {}, "Correlation chain"), chain,
    h("h4", {}, "Project"), project,
  );
  aside.dataset.id = event.id;
  if (event.correlationId) {
    try {
      const data = await request(
        `query ($filter: EventFilter) { events(filter: $filter, first: 100) { edges { node { id position eventType subject timestamp } } } }`,
        { filter: { correlationId: event.correlationId } },
      );
      chain.replaceChildren(...data.events.edges.map(({ node }) =>
        h("li", { class: node.id === event.id ? "this" : "" }, `#${node.position} ${node.eventType} · ${node.subject} · ${when(node.timestamp)}`)));
    } catch (err) {
      chain.replaceChildren(h("li", { class: "error" }, explain(err)));
    }
  } else {
    chain.replaceChildren(h("li", { class: "muted" }, "This event has no correlation id."));
  }
  if (event.aggregateType === "Project") {
    try {
      const data = await request(`query ($id: ID!) { project(id: $id) { name slug status version deleted } }`, { id: event.aggregateId });
      const p = data.project;
      project.className = "";
      project.textContent = p ? `${p.name} (${p.slug}): ${p.status}, version ${p.version}` : "Unknown project.";
    } catch (err) {
      project.textContent = explain(err);
    }
  }
}

function wire() {
  tail.wired = true;
  document.getElementById("event-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    tail.filter = filterFromForm();
    tail.after = tail.start;
    tail.events = [];
    tail.seen.clear();
    document.getElementById("events-body").replaceChildren();
    if (!tail.paused) subscribe();
    else state();
  });
  const pause = document.getElementById("tail-pause");
  pause.addEventListener("click", () => {
    tail.paused = !tail.paused;
    pause.textContent = tail.paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(tail.paused));
    if (tail.paused) {
      tail.stop?.();
      tail.stop = null;
      state();
    } else {
      subscribe();
    }
  });
  document.getElementById("tail-clear").addEventListener("click", () => {
    tail.events = [];
    document.getElementById("events-body").replaceChildren();
    state();
  });
}

/** The page is shown: the tail starts (once) and is drawn. */
export async function show() {
  visible = true;
  if (!tail.wired) {
    wire();
    tail.start = await firstCursor();
    tail.after ??= tail.start;
    if (!tail.paused) subscribe();
  }
  document.getElementById("events-body").replaceChildren(...tail.events.map(row));
  state();
}

/** The page is hidden; the tail goes on, so nothing is missed. */
export function hide() {
  visible = false;
}
