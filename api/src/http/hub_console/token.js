// The API token: asked for once when the hub has one (a read-model query,
// which needs it then, says so), kept in sessionStorage by client.js.

import { onUnauthenticated, request, socket, token } from "./client.js";
import { say } from "./view.js";

const PROBE = "{ projections { name } }";

let asking = null;

/** Whether the hub takes the token held (or needs none). */
async function accepted() {
  try {
    await request(PROBE);
    return true;
  } catch (err) {
    if (err.code === "UNAUTHENTICATED" || err.code === "HTTP_401") return false;
    // Unreachable or failing for another reason: the pages say so.
    return true;
  }
}

/** Shows the token dialog until the hub accepts the token given. */
function ask() {
  asking ??= new Promise((resolve) => {
    const dialog = document.getElementById("token-dialog");
    const form = document.getElementById("token-form");
    const input = document.getElementById("token-input");
    const message = document.getElementById("token-message");
    say(message, token.get() ? "The hub did not accept that token." : "");
    form.onsubmit = async (event) => {
      event.preventDefault();
      token.set(input.value.trim());
      say(message, "Checking…");
      if (await accepted()) {
        input.value = "";
        say(message, "");
        dialog.close();
        asking = null;
        socket.restart();
        resolve();
      } else {
        say(message, "The hub did not accept that token.", true);
        input.select();
      }
    };
    dialog.oncancel = (event) => event.preventDefault();
    dialog.showModal();
    input.focus();
  });
  return asking;
}

/** Resolves once the hub accepts this page (asking for the token if needed). */
export async function ready() {
  onUnauthenticated(() => {
    if (!asking) ask();
  });
  if (!(await accepted())) await ask();
}

/** Forgets the token and asks for it again. */
export function forget() {
  token.set("");
  ask();
}
