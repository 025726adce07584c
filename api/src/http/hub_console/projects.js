// Projects: a live board fed by `projectsChanged` (a snapshot, then every
// change; after a reconnect it continues after the last cursor), with
// create, start, stop, restart, rename and delete.

import { request, socket } from "./client.js";
import { explain, h, say, when } from "./view.js";

const FIELDS = `id name slug path status version lastError lastStartedAt lastStoppedAt
  ports { backend frontend postgres redis } deleted`;

const CHANGES = `subscription ($after: String) {
  projectsChanged(after: $after) { kind cursor project { ${FIELDS} } }
}`;

const ACTIONS = {
  start: { label: "Start", mutation: "startProject", when: ["STOPPED", "ERROR"] },
  stop: { label: "Stop", mutation: "stopProject", when: ["RUNNING", "ERROR"] },
  restart: { label: "Restart", mutation: "restartProject", when: ["RUNNING", "ERROR"] },
  rename: { label: "Rename", mutation: "renameProject", when: null },
  delete: { label: "Delete", mutation: "deleteProject", when: ["STOPPED", "ERROR"] },
};

/** Every project shown, by id; the cursor to continue after. */
const board = { projects: new Map(), gone: new Set(), cursor: null, first: null };
let snapshot = null;
let visible = false;
const started = [];

/** Resolves with the cursor at which the board's first snapshot was read. */
export function firstCursor() {
  return board.first ? Promise.resolve(board.first) : new Promise((resolve) => started.push(resolve));
}

function keep(project) {
  if (project.deleted || board.gone.has(project.id)) {
    board.gone.add(project.id);
    board.projects.delete(project.id);
    return;
  }
  const held = board.projects.get(project.id);
  if (!held || project.version >= held.version) board.projects.set(project.id, project);
}

function apply(change) {
  // A snapshot cut short by a reconnect starts again: only a complete one
  // is a point to continue from.
  if (change.kind !== "SNAPSHOT") board.cursor = change.cursor;
  switch (change.kind) {
    case "SNAPSHOT":
      (snapshot ??= new Map()).set(change.project.id, change.project);
      return;
    case "SNAPSHOT_COMPLETE":
      board.projects = snapshot ?? new Map();
      snapshot = null;
      if (!board.first) {
        board.first = change.cursor;
        started.splice(0).forEach((resolve) => resolve(change.cursor));
      }
      document.getElementById("page-projects").dataset.ready = "true";
      break;
    case "DELETED":
      keep({ ...change.project, deleted: true });
      break;
    default:
      keep(change.project);
  }
  render();
}

/** Starts following the projects (once, for the whole page). */
export function follow() {
  const message = document.getElementById("projects-message");
  const start = () =>
    socket.subscribe(CHANGES, () => ({ after: board.cursor }), {
      next: ({ data, errors }) => {
        if (errors?.length) {
          say(message, explain({ code: errors[0].extensions?.code, message: errors[0].message }), true);
          return;
        }
        apply(data.projectsChanged);
      },
      error: (error) => {
        if (error.extensions?.code === "RESYNC_REQUIRED") board.cursor = null;
        else say(message, explain({ code: error.extensions?.code, message: error.message }), true);
        setTimeout(start, 1000);
      },
      complete: () => setTimeout(start, 1000),
    });
  start();
  wire();
}

function wire() {
  document.getElementById("create-form").addEventListener("submit", create);
  document.getElementById("status-filter").addEventListener("change", render);
  document.getElementById("name-search").addEventListener("input", render);
  document.getElementById("rename-cancel").addEventListener("click", () =>
    document.getElementById("rename-dialog").close(),
  );
}

async function create(event) {
  event.preventDefault();
  const message = document.getElementById("projects-message");
  const name = document.getElementById("create-name");
  const path = document.getElementById("create-path");
  try {
    const data = await request(
      `mutation ($input: CreateProjectInput!) { createProject(input: $input) { project { ${FIELDS} } } }`,
      { input: { name: name.value, path: path.value } },
    );
    keep(data.createProject.project);
    render();
    say(message, `Created ${data.createProject.project.name}.`);
    name.value = "";
    path.value = "";
  } catch (err) {
    say(message, `Could not create ${name.value}: ${explain(err)}`, true);
  }
}

async function act(project, action, extra = {}) {
  const message = document.getElementById("projects-message");
  const { mutation, label } = ACTIONS[action];
  const args = Object.keys(extra).map((name) => `, $${name}: String!`).join("");
  const pass = Object.keys(extra).map((name) => `, ${name}: $${name}`).join("");
  const query = `mutation ($id: ID!, $expected: Int${args}) {
    ${mutation}(id: $id, expectedVersion: $expected${pass}) { project { ${FIELDS} } }
  }`;
  try {
    const data = await request(query, { id: project.id, expected: project.version, ...extra });
    keep(data[mutation].project);
    render();
    say(message, `${label}: ${project.name} is ${data[mutation].project.status}.`);
    return true;
  } catch (err) {
    if (err.code === "CONFLICT") {
      const current = await latest(project.id);
      const now = current ? `it is now “${current.name}”, ${current.status}, version ${current.version}` : "it is gone";
      say(message, `${label} ${project.name}: ${explain(err)} Here is the current state: ${now}. Try again if you still want to.`, true);
    } else {
      say(message, `${label} ${project.name}: ${explain(err)}`, true);
    }
    return false;
  }
}

async function latest(id) {
  try {
    const data = await request(`query ($id: ID!) { project(id: $id) { ${FIELDS} } }`, { id });
    if (data.project) keep(data.project);
    else board.projects.delete(id);
    render();
    return data.project && !data.project.deleted ? data.project : null;
  } catch {
    return null;
  }
}

function rename(project) {
  const dialog = document.getElementById("rename-dialog");
  const input = document.getElementById("rename-input");
  const message = document.getElementById("rename-message");
  input.value = project.name;
  say(message, "");
  document.getElementById("rename-form").onsubmit = async (event) => {
    event.preventDefault();
    dialog.close();
    await act(board.projects.get(project.id) ?? project, "rename", { name: input.value });
  };
  dialog.showModal();
  input.select();
}

function row(project) {
  const ports = project.ports;
  const buttons = Object.entries(ACTIONS).map(([action, { label, when: allowed }]) =>
    h("button", {
      type: "button",
      class: action === "delete" ? "danger" : "",
      dataset: { action },
      disabled: allowed && !allowed.includes(project.status),
      "aria-label": `${label} ${project.name}`,
      onclick: () => (action === "rename" ? rename(project) : act(project, action)),
    }, label),
  );
  return h("tr", { dataset: { id: project.id, status: project.status } },
    h("th", { scope: "row" }, h("span", { class: "name" }, project.name), h("small", {}, project.slug, " · ", project.path)),
    h("td", {}, h("span", { class: `status status-${project.status.toLowerCase()}` }, project.status)),
    h("td", { class: "ports" }, `backend ${ports.backend}, frontend ${ports.frontend}, postgres ${ports.postgres}, redis ${ports.redis}`),
    h("td", { class: "version" }, project.version),
    h("td", { class: "last-error" }, project.lastError ?? "—"),
    h("td", {}, when(project.lastStartedAt)),
    h("td", {}, when(project.lastStoppedAt)),
    h("td", { class: "actions" }, buttons),
  );
}

function render() {
  if (!visible) return;
  const status = document.getElementById("status-filter").value;
  const search = document.getElementById("name-search").value.trim().toLowerCase();
  const shown = [...board.projects.values()].filter(
    (p) =>
      (!status || p.status === status) &&
      (!search || p.name.toLowerCase().includes(search) || p.slug.includes(search)),
  );
  const body = document.getElementById("projects-body");
  const focused = document.activeElement?.closest?.("tr[data-id]")?.dataset.id;
  const action = document.activeElement?.dataset?.action;
  body.replaceChildren(...shown.map(row));
  if (focused && action) body.querySelector(`tr[data-id="${focused}"] [data-action="${action}"]`)?.focus();
  document.getElementById("projects-empty").hidden = shown.length > 0;
  document.getElementById("project-count").textContent = `${shown.length} of ${board.projects.size} shown`;
}

/** The page is shown. */
export function show() {
  visible = true;
  render();
}

/** The page is hidden. */
export function hide() {
  visible = false;
}
