// The hub's GraphQL console: queries and mutations over POST /graphql,
// subscriptions over /graphql/ws (graphql-transport-ws). No dependencies.

const $ = (id) => document.getElementById(id);
const output = $("output");
let socket = null;

function show(value) {
  output.textContent = typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function append(value) {
  output.textContent += JSON.stringify(value, null, 2) + "\n";
  output.scrollTop = output.scrollHeight;
}

function state(text) {
  $("state").textContent = text;
}

function variables() {
  const text = $("variables").value.trim();
  return text === "" ? {} : JSON.parse(text);
}

function isSubscription(query) {
  const withoutComments = query.replace(/#[^\n\r]*/g, "");
  return /^\s*subscription\b/.test(withoutComments);
}

async function run() {
  const query = $("query").value;
  let vars;
  try {
    vars = variables();
  } catch (err) {
    show("The variables are not JSON: " + err.message);
    return;
  }
  if (isSubscription(query)) {
    subscribe(query, vars);
    return;
  }
  const headers = {
    "content-type": "application/json",
    accept: "application/graphql-response+json, application/json;q=0.9",
  };
  const token = $("token").value.trim();
  if (token) headers.authorization = "Bearer " + token;
  state("running…");
  try {
    const started = performance.now();
    const response = await fetch("/graphql", {
      method: "POST",
      headers,
      body: JSON.stringify({ query, variables: vars }),
    });
    const text = await response.text();
    state(`${response.status} in ${Math.round(performance.now() - started)} ms`);
    try {
      show(JSON.parse(text));
    } catch {
      show(text);
    }
  } catch (err) {
    state("");
    show("The request failed: " + err.message);
  }
}

function subscribe(query, vars) {
  stop();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(`${scheme}//${location.host}/graphql/ws`, "graphql-transport-ws");
  show("");
  $("stop").disabled = false;
  state("connecting…");
  socket.onopen = () => {
    const token = $("token").value.trim();
    socket.send(JSON.stringify({ type: "connection_init", payload: token ? { authToken: token } : {} }));
  };
  socket.onmessage = (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "connection_ack") {
      state("live");
      socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables: vars } }));
    } else if (data.type === "ping") {
      socket.send(JSON.stringify({ type: "pong" }));
    } else if (data.type === "next" || data.type === "error") {
      append(data.payload);
    } else if (data.type === "complete") {
      state("completed");
    }
  };
  socket.onclose = (event) => {
    state(`closed (${event.code}${event.reason ? ": " + event.reason : ""})`);
    $("stop").disabled = true;
  };
}

function stop() {
  if (socket) {
    socket.onclose = null;
    socket.close(1000);
    socket = null;
    state("stopped");
  }
  $("stop").disabled = true;
}

$("run").addEventListener("click", run);
$("stop").addEventListener("click", stop);
$("query").addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "Enter") run();
});
// The hub console (GET /) keeps the token for this tab under this key.
$("token").value = sessionStorage.getItem("hub.token") ?? "";
