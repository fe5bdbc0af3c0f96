// The console's session and its calls to the public API (decision 99).
//
// The access token is kept in this module's memory only: never in localStorage,
// sessionStorage or a readable cookie, so a script injected into the page cannot take a
// long-lived secret away. The refresh token is an HttpOnly cookie the gateway sets on
// /console/session/*, which this code never sees; a reload asks that route for a fresh
// access token. Only the organization ids signed into are remembered (not secrets).

const CONSOLE_HEADER = { "X-Outpost-Console": "1" };
const KNOWN_ORGS = "outpost.console.organizations";

let access = null; // { token, expiresAt (ms), org, role, sub }
let refreshing = null;

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
  field() {
    const fields = this.body.fields || [];
    return fields.length ? fields[0].name : null;
  }
}

function claims(token) {
  const part = token.split(".")[1] || "";
  const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
  return JSON.parse(json);
}

function keep(reply) {
  const c = claims(reply.accessToken);
  access = {
    token: reply.accessToken,
    expiresAt: Date.now() + reply.expiresIn * 1000,
    org: c.org,
    role: c.role,
    sub: c.sub,
  };
  remember(c.org);
  return access;
}

async function answer(resp) {
  if (resp.status === 204) return null;
  const text = await resp.text();
  const body = text ? JSON.parse(text) : null;
  if (!resp.ok) throw new ApiError(resp.status, body);
  return body;
}

export function current() {
  return access;
}

export function knownOrganizations() {
  try {
    const list = JSON.parse(localStorage.getItem(KNOWN_ORGS) || "[]");
    return Array.isArray(list) ? list.filter((id) => typeof id === "string") : [];
  } catch {
    return [];
  }
}

function remember(org) {
  const list = knownOrganizations().filter((id) => id !== org);
  list.unshift(org);
  localStorage.setItem(KNOWN_ORGS, JSON.stringify(list.slice(0, 20)));
}

export async function signIn(email, password, organization) {
  const body = { email, password };
  if (organization) body.organization = organization;
  const resp = await fetch("/console/session/login", {
    method: "POST",
    credentials: "same-origin",
    headers: { ...CONSOLE_HEADER, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return keep(await answer(resp));
}

// A fresh access token from the refresh cookie; null when there is no session.
export async function resume() {
  if (!refreshing) {
    refreshing = (async () => {
      try {
        const resp = await fetch("/console/session/refresh", {
          method: "POST",
          credentials: "same-origin",
          headers: CONSOLE_HEADER,
        });
        if (resp.status === 401 || resp.status === 403) {
          access = null;
          return null;
        }
        return keep(await answer(resp));
      } finally {
        refreshing = null;
      }
    })();
  }
  return refreshing;
}

export async function signOut() {
  if (access && access.expiresAt - Date.now() < 30_000) await resume();
  if (access) {
    try {
      // same-origin credentials, so that the answer's Set-Cookie clears the refresh cookie
      await answer(
        await fetch("/console/session/logout", {
          method: "POST",
          credentials: "same-origin",
          headers: { ...CONSOLE_HEADER, Authorization: `Bearer ${access.token}` },
        }),
      );
    } catch {
      // the session may have ended already; the memory is cleared either way
    }
  }
  access = null;
}

// A call to the API with the access token, refreshed when about to expire or refused once.
export async function call(method, path, { params, body } = {}) {
  if (access && access.expiresAt - Date.now() < 30_000) await resume();
  if (!access) throw new ApiError(401, { message: "signed out" });
  let url = path;
  if (params) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== "") query.set(k, String(v));
    }
    const text = query.toString();
    if (text) url += (url.includes("?") ? "&" : "?") + text;
  }
  const send = () =>
    fetch(url, {
      method,
      credentials: "omit", // the API is called with the bearer token, never a cookie
      headers: {
        Authorization: `Bearer ${access.token}`,
        ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  let resp = await send();
  if (resp.status === 401 && (await resume())) resp = await send();
  return answer(resp);
}

// Follows the organization's timeline (GET /api/v1/events/stream, decision 96) and calls
// onEntry with each new entry. fetch, not EventSource: EventSource cannot send the bearer
// token, and the token must not go into a URL. Reconnects with Last-Event-ID after a
// dropped connection. Returns the function that stops it.
export function follow(onEntry) {
  const controller = new AbortController();
  let lastId = null;
  let stopped = false;
  const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  (async () => {
    while (!stopped) {
      try {
        if (access && access.expiresAt - Date.now() < 30_000) await resume();
        if (!access) return;
        const headers = { Authorization: `Bearer ${access.token}`, Accept: "text/event-stream" };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const resp = await fetch("/api/v1/events/stream", {
          headers,
          credentials: "omit",
          signal: controller.signal,
        });
        if (resp.status === 401) {
          if (!(await resume())) return;
          continue;
        }
        if (resp.status === 403 || resp.status === 404) return; // no events:read, or no stream
        if (resp.ok) {
          const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += value.replace(/\r\n?/g, "\n");
            let end;
            while ((end = buffer.indexOf("\n\n")) >= 0) {
              const block = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              let event = "message";
              let data = "";
              for (const line of block.split("\n")) {
                if (line.startsWith("event:")) event = line.slice(6).trim();
                else if (line.startsWith("data:")) data += line.slice(5).trimStart();
                else if (line.startsWith("id:")) lastId = line.slice(3).trim();
              }
              if (event === "timeline" && data) onEntry(JSON.parse(data));
            }
          }
        }
      } catch {
        if (stopped) return;
      }
      if (!stopped) await pause(3000); // then reconnect, from Last-Event-ID
    }
  })();
  return () => {
    stopped = true;
    controller.abort();
  };
}
