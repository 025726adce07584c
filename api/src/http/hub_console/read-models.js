// Read models: each projection's checkpoint, lag, code version and state,
// a rebuild's progress and ETA, and the events it parked, with Retry. All
// through the admin GraphQL operations (they need the token when the hub
// has one); redrawn every second while the page is shown.

import { request } from "./client.js";
import { duration, every, explain, h, say, when } from "./view.js";

const PROJECTIONS = `{ projections {
  name handled lagEvents lagSeconds state rebuildDone rebuildTotal version codeVersion outdated parked
  lastRebuild { state done total eventsPerSecond etaSeconds error at }
  parkedEvents(first: 50) { eventId aggregateType aggregateId sequence eventType failed error heldBehind attempts parkedAt }
} }`;

const REBUILD = `mutation ($names: [String!]) { rebuildProjections(names: $names) { name state } }`;
const RETRY = `mutation ($name: String!) { retryParkedEvents(name: $name) {
  name replayed { eventId } stillParked { eventId error }
} }`;

const outcomes = new Map();

function message(text, error = false) {
  say(document.getElementById("read-models-message"), text, error);
}

async function rebuild(name) {
  try {
    await request(REBUILD, { names: [name] });
    message(`Rebuilding ${name} beside the live table; the live one answers until the switch.`);
  } catch (err) {
    message(`Rebuild ${name}: ${explain(err)}`, true);
  }
  refresh();
}

async function retry(name) {
  try {
    const data = await request(RETRY, { name });
    const { replayed, stillParked } = data.retryParkedEvents;
    const text = `${replayed.length} replayed, ${stillParked.length} still parked`;
    outcomes.set(name, text);
    message(`Retry ${name}: ${text}.`, stillParked.length > 0);
  } catch (err) {
    message(`Retry ${name}: ${explain(err)}`, true);
  }
  refresh();
}

function progress(p) {
  const job = p.lastRebuild;
  const done = p.rebuildDone ?? job?.done;
  const total = p.rebuildTotal ?? job?.total;
  if (!job && p.state !== "REBUILDING") return h("p", { class: "muted rebuild-state", dataset: { state: "none" } }, "No rebuild started by this hub process.");
  const state = job?.state ?? "RUNNING";
  const words = {
    RUNNING: `running: ${done ?? 0} of ${total ?? "?"} events, ETA ${duration(job?.etaSeconds)}${job?.eventsPerSecond ? `, ${Math.round(job.eventsPerSecond)} events/s` : ""}`,
    SWITCHED: `switched to the rebuilt table (${done ?? 0} events) at ${when(job?.at)}`,
    FAILED: `failed at ${when(job?.at)}: ${job?.error ?? "see the hub's log"}; Rebuild continues where it stopped`,
  }[state];
  const label = `Rebuild of ${p.name}`;
  return h("div", { class: "rebuild" },
    h("progress", { max: total || 1, value: state === "SWITCHED" ? total || 1 : done ?? 0, "aria-label": label }),
    h("p", { class: "rebuild-state", dataset: { state: state.toLowerCase() } }, `Rebuild ${words}`),
  );
}

function parkedList(p) {
  if (!p.parked) return h("p", { class: "muted parked-none" }, "No parked events.");
  return h("div", {},
    h("div", { class: "scroll" }, h("table", { class: "parked" },
      h("caption", {}, `${p.parked} parked events`),
      h("thead", {}, h("tr", {}, ["Event", "Aggregate", "Type", "Error", "Attempts", "Parked at"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, p.parkedEvents.map((e) => h("tr", { dataset: { id: e.eventId } },
        h("td", {}, h("code", {}, e.eventId)),
        h("td", {}, `${e.aggregateType} ${e.aggregateId} #${e.sequence}`),
        h("td", {}, e.eventType),
        h("td", { class: "parked-error" }, e.failed ? e.error ?? "failed (see the hub's log)" : `waits behind ${e.heldBehind}`),
        h("td", {}, e.attempts),
        h("td", {}, when(e.parkedAt)),
      ))),
    )),
  );
}

function card(p) {
  return h("article", { class: "card", dataset: { name: p.name } },
    h("h3", {}, p.name),
    h("dl", {},
      h("dt", {}, "Checkpoint"), h("dd", { class: "handled" }, `${p.handled} events handled`),
      h("dt", {}, "Lag"), h("dd", { class: "lag" }, `${p.lagEvents} events, ${duration(p.lagSeconds)}`),
      h("dt", {}, "Version"), h("dd", {}, `table built by v${p.version}, code v${p.codeVersion}${p.outdated ? " (outdated: rebuild it)" : ""}`),
      h("dt", {}, "State"), h("dd", { class: "state" }, p.state === "LIVE" ? "live" : "rebuilding beside the live table"),
    ),
    progress(p),
    h("div", { class: "toolbar" },
      h("button", { type: "button", dataset: { action: "rebuild" }, onclick: () => rebuild(p.name) }, `Rebuild ${p.name}`),
      h("button", { type: "button", dataset: { action: "retry" }, disabled: !p.parked, onclick: () => retry(p.name) }, `Retry parked events of ${p.name}`),
      outcomes.has(p.name) ? h("span", { class: "muted retry-outcome" }, `Last retry: ${outcomes.get(p.name)}`) : null,
    ),
    h("h4", {}, "Parked events"),
    parkedList(p),
  );
}

async function refresh() {
  const into = document.getElementById("read-models");
  try {
    const data = await request(PROJECTIONS);
    const focused = document.activeElement?.dataset?.action;
    const owner = document.activeElement?.closest?.("article")?.dataset.name;
    into.replaceChildren(...data.projections.map(card));
    if (focused && owner) into.querySelector(`article[data-name="${owner}"] [data-action="${focused}"]`)?.focus();
    into.dataset.loaded = "true";
  } catch (err) {
    message(`The read models could not be read: ${explain(err)}`, true);
  }
}

const page = every(1000, refresh);

/** The page is shown: redraw now and every second. */
export const show = page.show;

/** The page is hidden: stop asking. */
export const hide = page.hide;
