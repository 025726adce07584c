// The hub console: one document, a page per path (/console/projects,
// /console/events, /console/read-models, /console/health), the socket's
// state in the header. Every page uses the public API only.

import { socket } from "./client.js";
import * as events from "./events.js";
import * as health from "./health.js";
import * as projects from "./projects.js";
import * as readModels from "./read-models.js";
import { forget, ready } from "./token.js";

const PAGES = {
  projects: { module: projects, title: "Projects" },
  events: { module: events, title: "Events" },
  "read-models": { module: readModels, title: "Read models" },
  health: { module: health, title: "Health" },
};

let current = null;

function pageOf(path) {
  const name = path.replace(/^\/console\/?/, "").replace(/\/$/, "");
  return PAGES[name] ? name : "projects";
}

function show(name) {
  if (current === name) return;
  if (current) PAGES[current].module.hide();
  current = name;
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = section.id !== `page-${name}`;
  }
  for (const link of document.querySelectorAll("nav a[data-page]")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `hub · ${PAGES[name].title}`;
  PAGES[name].module.show();
  document.getElementById(`page-${name}`).querySelector("h2")?.focus({ preventScroll: true });
}

const LABELS = {
  idle: "not connected",
  connecting: "connecting…",
  open: "live",
  reconnecting: "reconnecting… (the hub is unreachable; the page catches up when it is back)",
  refused: "the hub refused the token",
};

async function boot() {
  const status = document.getElementById("connection");
  socket.onState((state) => {
    status.textContent = LABELS[state] ?? state;
    status.dataset.state = state;
  });
  document.querySelector("nav").addEventListener("click", (event) => {
    const link = event.target.closest("a[data-page]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    history.pushState(null, "", link.href);
    show(link.dataset.page);
  });
  window.addEventListener("popstate", () => show(pageOf(location.pathname)));
  document.getElementById("forget-token").addEventListener("click", forget);
  await ready();
  projects.follow();
  show(pageOf(location.pathname));
}

boot();
