// Health: `/health` in full (database, NATS, the relay's lag, the feed's
// wait and who holds it, each consumer), redrawn every two seconds.

import { health } from "./client.js";
import { duration, every, explain, h, say } from "./view.js";


function yes(value) {
  return value ? "yes" : "no";
}

function consumers(report) {
  return h("div", { class: "scroll" }, h("table", { class: "consumers" },
    h("caption", {}, "Feed consumers"),
    h("thead", {}, h("tr", {}, ["Consumer", "Runs here", "Handled", "Lag", "Parked", "Halted on", "Last error", "Failures in a row"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, Object.entries(report).map(([name, c]) => h("tr", { dataset: { name } },
      h("th", { scope: "row" }, name),
      h("td", {}, yes(c.active_here)),
      h("td", {}, c.handled),
      h("td", {}, c.lag ?? "—"),
      h("td", {}, c.parked ?? "—"),
      h("td", {}, c.halted ? JSON.stringify(c.halted) : "—"),
      h("td", {}, c.last_error ?? "—"),
      h("td", {}, c.consecutive_failures),
    ))),
  ));
}

function render(report) {
  const parts = [
    h("p", { class: `overall status-${report.status}`, dataset: { status: report.status } }, `The hub is ${report.status}.`),
  ];
  if (!report.database) {
    parts.push(h("p", { class: "muted" }, "The details need the API token."));
    return parts;
  }
  const feed = report.feed;
  parts.push(
    h("dl", {},
      h("dt", {}, "Database"), h("dd", { class: "database" }, report.database.connected ? "connected" : "not answering"),
      h("dt", {}, "NATS"), h("dd", { class: "nats" }, `${report.nats.connected ? "connected" : "disconnected"} to ${report.nats.url}${report.nats.server ? ` (${report.nats.server})` : ""}`),
      h("dt", {}, "Relay lag"), h("dd", {}, report.relay_lag === null ? "unknown" : `${report.relay_lag} events`),
      h("dt", {}, "Feed wait"), h("dd", { class: "feed-wait" }, feed ? duration(feed.wait_seconds) : "—"),
    ),
  );
  if (feed?.held_back_by?.length) {
    parts.push(h("h3", {}, "Held back by"), h("ul", {}, feed.held_back_by.map((t) =>
      h("li", {}, `pid ${t.pid} (${t.application_name || "no name"}, database ${t.database ?? "?"}, ${t.state ?? "?"}), open ${duration(t.open_seconds)}`))));
  }
  if (report.consumers) parts.push(consumers(report.consumers));
  return parts;
}

async function refresh() {
  const into = document.getElementById("health");
  const message = document.getElementById("health-message");
  try {
    const report = await health();
    into.replaceChildren(...render(report));
    into.dataset.loaded = "true";
    say(message, `Checked at ${new Date().toLocaleTimeString()}.`);
  } catch (err) {
    say(message, `The hub did not answer: ${explain(err)}`, true);
  }
}

const page = every(2000, refresh);

/** The page is shown: redraw now and every two seconds. */
export const show = page.show;

/** The page is hidden: stop asking. */
export const hide = page.hide;
