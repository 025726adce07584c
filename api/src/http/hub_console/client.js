// The hub's public API as the console uses it, like any other client:
// queries and mutations over POST /graphql, subscriptions over /graphql/ws
// (graphql-transport-ws), `/health`; the API token on each. The socket
// reconnects by itself and subscribes again with the variables each
// subscription gives at that moment (its `after` cursor), so nothing is
// missed across a hub restart.

const TOKEN_KEY = "hub.token";

/** The API token, kept for this tab (sessionStorage). */
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) ?? "",
  set(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** An error the hub answered (`code` is its `extensions.code`). */
export class HubError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

const refused = new Set();

/** Calls `listener` whenever the hub asks for its token. */
export function onUnauthenticated(listener) {
  refused.add(listener);
}

function headers() {
  const t = token.get();
  return t ? { authorization: "Bearer " + t } : {};
}

/** Runs one query or mutation; its `data`, or a rejected `HubError`. */
export async function request(query, variables = {}) {
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: { ...headers(), "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new HubError("no answer", "OFFLINE");
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new HubError(`the hub answered ${response.status}`, `HTTP_${response.status}`);
  }
  const error = body.errors?.[0];
  if (error) {
    const code = error.extensions?.code ?? "ERROR";
    if (code === "UNAUTHENTICATED") refused.forEach((listener) => listener());
    throw new HubError(error.message, code);
  }
  return body.data;
}

/** `GET /health`, with the token (the details need it when one is set). */
export async function health() {
  let response;
  try {
    response = await fetch("/health", { headers: headers() });
  } catch {
    throw new HubError("no answer", "OFFLINE");
  }
  return response.json();
}

/**
 * One graphql-transport-ws socket for every subscription of the page.
 * Its state ("connecting", "open", "reconnecting", "refused") is on
 * `<html data-connection>` and given to `onState` listeners.
 */
class Socket {
  constructor() {
    this.subscriptions = new Map();
    this.nextId = 1;
    this.ws = null;
    this.acked = false;
    this.opened = false;
    this.attempt = 0;
    this.state = "idle";
    this.listeners = new Set();
  }

  onState(listener) {
    this.listeners.add(listener);
    listener(this.state);
  }

  setState(state) {
    this.state = state;
    document.documentElement.dataset.connection = state;
    this.listeners.forEach((listener) => listener(state));
  }

  /** Connects (again) now, e.g. with a new token. */
  restart() {
    const old = this.ws;
    this.ws = null;
    old?.close(1000);
    this.connect();
  }

  connect() {
    this.acked = false;
    this.setState(this.opened ? "reconnecting" : "connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/graphql/ws`, "graphql-transport-ws");
    this.ws = ws;
    ws.onopen = () => {
      const t = token.get();
      ws.send(JSON.stringify({ type: "connection_init", payload: t ? { authToken: t } : {} }));
    };
    ws.onmessage = (message) => {
      if (ws === this.ws) this.receive(JSON.parse(message.data));
    };
    ws.onclose = (event) => this.closed(ws, event);
  }

  receive(message) {
    const subscription = this.subscriptions.get(message.id);
    switch (message.type) {
      case "connection_ack":
        this.acked = true;
        this.opened = true;
        this.attempt = 0;
        this.setState("open");
        for (const [id, sub] of this.subscriptions) this.send(id, sub);
        break;
      case "ping":
        this.ws.send(JSON.stringify({ type: "pong" }));
        break;
      case "next":
        subscription?.handlers.next(message.payload);
        break;
      case "error":
        this.subscriptions.delete(message.id);
        subscription?.handlers.error(message.payload?.[0] ?? {});
        break;
      case "complete":
        this.subscriptions.delete(message.id);
        subscription?.handlers.complete?.();
        break;
    }
  }

  closed(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.acked = false;
    if (event.code === 4403) {
      this.setState("refused");
      refused.forEach((listener) => listener());
      return;
    }
    this.setState(this.opened ? "reconnecting" : "connecting");
    const delay = Math.min(200 * 2 ** this.attempt, 3000);
    this.attempt += 1;
    setTimeout(() => {
      if (!this.ws) this.connect();
    }, delay);
  }

  send(id, sub) {
    const payload = { query: sub.query, variables: sub.variables() };
    this.ws.send(JSON.stringify({ id, type: "subscribe", payload }));
  }

  /**
   * Subscribes to `query`; `variables()` is asked each time it is sent
   * (again after a reconnect). `handlers`: `next(payload)`, `error(error)`,
   * `complete()`. Returns the function that ends it.
   */
  subscribe(query, variables, handlers) {
    const id = String(this.nextId++);
    const sub = { query, variables, handlers };
    this.subscriptions.set(id, sub);
    if (this.acked) this.send(id, sub);
    else if (!this.ws && this.state !== "refused") this.connect();
    return () => {
      if (this.subscriptions.delete(id) && this.acked) {
        this.ws.send(JSON.stringify({ id, type: "complete" }));
      }
    };
  }
}

/** The page's socket. */
export const socket = new Socket();
