// The chat page: sign-in, a streamed answer read from server-sent events, Stop, feedback.
// Model text is only ever set with textContent, so nothing it says can become markup.
"use strict";

const $ = (id) => document.getElementById(id);

let conversationId = null;
let controller = null;

function showBanner(message) {
  $("banner-text").textContent = message;
  $("banner").hidden = false;
}

function hideBanner() {
  $("banner").hidden = true;
}

function showSignIn() {
  $("chat").hidden = true;
  $("controls").hidden = true;
  $("who").textContent = "";
  $("sign-in").hidden = false;
  $("username").focus();
}

function showChat(username) {
  $("sign-in").hidden = true;
  $("chat").hidden = false;
  $("controls").hidden = false;
  $("who").textContent = "Signed in as " + username;
  $("message").focus();
}

async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") return body.error;
  } catch (_) { /* not JSON */ }
  return "Something went wrong (HTTP " + response.status + "). Please try again.";
}

function addMessage(role, text) {
  const item = document.createElement("li");
  item.className = role;
  const label = document.createElement("span");
  label.className = "role";
  label.textContent = role === "user" ? "You" : "Assistant";
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text;
  item.append(label, body);
  $("messages").append(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

function addFeedback(item, conversation, messageCount) {
  const bar = document.createElement("div");
  bar.className = "feedback";
  const thanks = document.createElement("span");
  thanks.className = "thanks";
  const buttons = [["up", "👍", "Good answer"], ["down", "👎", "Bad answer"]].map(
    ([rating, symbol, label]) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "thumbs-" + rating;
      button.textContent = symbol;
      button.setAttribute("aria-label", label);
      button.setAttribute("aria-pressed", "false");
      button.addEventListener("click", async () => {
        const response = await fetch("/api/feedback", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ conversation_id: conversation, rating, message_count: messageCount }),
        });
        if (!response.ok) {
          showBanner(await errorOf(response));
          return;
        }
        buttons.forEach((other) => { other.disabled = true; });
        button.setAttribute("aria-pressed", "true");
        thanks.textContent = "Thanks for the feedback.";
      });
      return button;
    },
  );
  bar.append(...buttons, thanks);
  item.append(bar);
}

// One server-sent event: its name ("message" when unnamed) and its data lines joined.
function parseFrame(frame) {
  let name = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
  }
  return { name, data: data.join("\n") };
}

async function send(question) {
  hideBanner();
  addMessage("user", question);
  const item = addMessage("assistant", "");
  const text = item.querySelector(".text");
  item.dataset.state = "streaming";
  controller = new AbortController();
  $("send").disabled = true;
  $("stop").disabled = false;
  let conversation = conversationId;
  let messageCount = null;
  try {
    const response = await fetch("/api/chat", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ message: question, conversation_id: conversationId }),
      signal: controller.signal,
    });
    if (response.status === 401) {
      item.remove();
      showSignIn();
      showBanner(await errorOf(response));
      return;
    }
    if (!response.ok) {
      item.dataset.state = "error";
      text.textContent = "No answer.";
      showBanner(await errorOf(response));
      if (response.status === 404) conversationId = null;
      return;
    }
    conversation = response.headers.get("x-conversation-id");
    messageCount = Number(response.headers.get("x-message-count"));
    conversationId = conversation;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = parseFrame(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (frame.name === "message") {
          text.textContent += frame.data;
        } else if (frame.name === "done") {
          item.dataset.state = "done";
        } else if (frame.name === "error") {
          item.dataset.state = "error";
          showBanner(JSON.parse(frame.data).error);
        }
      }
    }
    if (item.dataset.state === "streaming") item.dataset.state = "stopped";
  } catch (error) {
    if (error.name === "AbortError") {
      item.dataset.state = "stopped";
    } else {
      item.dataset.state = "error";
      showBanner("The connection to the service was lost. Please try again.");
    }
  } finally {
    controller = null;
    $("send").disabled = false;
    $("stop").disabled = true;
    if (conversation && item.dataset.state !== "error" && text.textContent) {
      addFeedback(item, conversation, messageCount);
    }
    $("message").focus();
  }
}

$("sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  hideBanner();
  const response = await fetch("/api/session", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: $("username").value, password: $("password").value }),
  });
  $("password").value = "";
  if (!response.ok) {
    showBanner(await errorOf(response));
    $("password").focus();
    return;
  }
  showChat((await response.json()).username);
});

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const question = $("message").value.trim();
  if (!question || controller) return;
  $("message").value = "";
  send(question);
});

$("message").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});

$("stop").addEventListener("click", () => {
  if (controller) controller.abort();
});

$("new-chat").addEventListener("click", () => {
  if (controller) controller.abort();
  conversationId = null;
  $("messages").replaceChildren();
  hideBanner();
  $("message").focus();
});

$("sign-out").addEventListener("click", async () => {
  if (controller) controller.abort();
  await fetch("/api/session", { method: "DELETE" });
  conversationId = null;
  $("messages").replaceChildren();
  showSignIn();
});

$("banner-close").addEventListener("click", hideBanner);

(async () => {
  const response = await fetch("/api/session");
  if (response.ok) showChat((await response.json()).username);
  else showSignIn();
})();
