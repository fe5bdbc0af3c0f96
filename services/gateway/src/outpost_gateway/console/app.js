// The Outpost console (decision 99): plain ES modules over the public API, no build step.
// Pages are routed by the URL's hash; every list follows the API's cursors, every chart asks
// for aggregated buckets no more numerous than its width in pixels. Text from the API is
// only ever set as text (never parsed as HTML).

import * as session from "./session.js";

const main = document.getElementById("main");
const statusLine = document.getElementById("status");
const PAGE_SIZE = 25;
const STATUSES = ["REGISTERED", "PROVISIONED", "ACTIVE", "DECOMMISSIONED"];
// The aggregated query's bucket lengths, in seconds (GET /api/v1/readings/aggregated).
const INTERVALS = [
  ["1m", 60],
  ["5m", 300],
  ["15m", 900],
  ["1h", 3600],
  ["1d", 86400],
];
const RANGES = [
  ["1h", "Last hour", 3600],
  ["6h", "Last 6 hours", 6 * 3600],
  ["24h", "Last 24 hours", 86400],
  ["7d", "Last 7 days", 7 * 86400],
  ["30d", "Last 30 days", 30 * 86400],
];

// --- small DOM helpers --------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// A live refresh re-renders the page without moving the focus (decision 99).
let quiet = false;

function page(title, ...children) {
  const heading = h("h1", { tabindex: "-1" }, title);
  main.replaceChildren(heading, ...children.filter((c) => c !== null && c !== undefined));
  document.title = `${title} · Outpost console`;
  if (!quiet) heading.focus();
  return heading;
}

function say(message, kind = "info") {
  statusLine.textContent = message;
  statusLine.dataset.kind = kind;
}

function shortId(id) {
  return id ? id.slice(0, 8) : "";
}

function when(ts) {
  if (!ts) return "never";
  return new Date(ts).toLocaleString();
}

function ago(ts) {
  if (!ts) return "never";
  const seconds = Math.max(0, (Date.now() - new Date(ts).getTime()) / 1000);
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

function badge(text, kind) {
  return h("span", { class: `badge badge-${kind || text.toLowerCase()}` }, text);
}

function table(caption, headers, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows),
    ),
  );
}

function hashParams() {
  const hash = location.hash.slice(1) || "/";
  const [path, query] = hash.split("?");
  return { path, params: new URLSearchParams(query || "") };
}

function go(path, params) {
  const query = params ? new URLSearchParams(params).toString() : "";
  location.hash = query ? `${path}?${query}` : path;
}

function failed(error) {
  if (error instanceof session.ApiError && error.status === 401) {
    showSignIn("Your session has ended: sign in again.");
    return;
  }
  say(error.message || String(error), "error");
}

// --- sign in, the organization switcher, sign out -----------------------------------------

function showChrome(signedIn) {
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("account").hidden = !signedIn;
  if (!signedIn) return;
  const me = session.current();
  document.getElementById("who").textContent = `${me.role} in ${shortId(me.org)}`;
  const select = document.getElementById("org-switch");
  const orgs = session.knownOrganizations();
  select.replaceChildren(
    ...orgs.map((id) =>
      h("option", { value: id, selected: id === me.org }, `Organization ${shortId(id)}`),
    ),
    h("option", { value: "" }, "Another organization…"),
  );
}

function showSignIn(message, organization) {
  showChrome(false);
  const email = h("input", { id: "email", type: "email", autocomplete: "username", required: true });
  const password = h("input", {
    id: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const org = h("input", {
    id: "organization",
    type: "text",
    autocomplete: "off",
    placeholder: "organization id",
    value: organization || "",
  });
  const orgField = h(
    "div",
    { class: "field", hidden: !organization },
    h("label", { for: "organization" }, "Organization"),
    org,
    h("p", { class: "hint" }, "You belong to several organizations: name the one to open."),
  );
  const error = h("p", { id: "sign-in-error", class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "card sign-in", "aria-describedby": "sign-in-error" },
    h("div", { class: "field" }, h("label", { for: "email" }, "Email"), email),
    h("div", { class: "field" }, h("label", { for: "password" }, "Password"), password),
    orgField,
    error,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      await session.signIn(email.value, password.value, org.value.trim() || undefined);
      password.value = "";
      say("Signed in.");
      start();
    } catch (e) {
      if (e instanceof session.ApiError && e.field() === "organization") {
        orgField.hidden = false;
        org.focus();
      }
      error.textContent = e.message;
    }
  });
  page("Sign in to Outpost", message ? h("p", {}, message) : null, form);
  email.focus();
}

document.getElementById("sign-out").addEventListener("click", async () => {
  stopFollowing();
  await session.signOut();
  say("Signed out.");
  history.replaceState(null, "", "/");
  showSignIn();
});

document.getElementById("org-switch").addEventListener("change", async (event) => {
  const chosen = event.target.value;
  const me = session.current();
  if (me && chosen === me.org) return;
  // A session belongs to one organization: opening another is signing in to it.
  stopFollowing();
  await session.signOut();
  say("Sign in to the organization you chose.");
  showSignIn("Sessions are per organization: sign in to open another.", chosen || " ");
});

// --- overview -----------------------------------------------------------------------------

async function count(path, params) {
  const page_ = await session.call("GET", path, {
    params: { ...params, limit: 1, include: "totalCount" },
  });
  return page_.totalCount;
}

async function overview() {
  const cards = h("div", { class: "cards" });
  page("Fleet overview", cards);
  const figures = [
    ["Devices", "/api/v1/devices", {}, "#/devices"],
    ...STATUSES.map((s) => [
      s[0] + s.slice(1).toLowerCase(),
      "/api/v1/devices",
      { status: s },
      `#/devices?status=${s}`,
    ]),
    ["Online now", "/api/v1/devices", { online: "true" }, "#/devices?online=true"],
    ["Open alerts", "/api/v1/alerts", { status: "OPEN" }, "#/alerts?status=OPEN"],
    [
      "Acknowledged alerts",
      "/api/v1/alerts",
      { status: "ACKNOWLEDGED" },
      "#/alerts?status=ACKNOWLEDGED",
    ],
  ];
  const values = await Promise.all(figures.map(([, path, params]) => count(path, params)));
  cards.replaceChildren(
    ...figures.map(([label, , , href], i) =>
      h(
        "a",
        { class: "card figure", href, "data-figure": label },
        h("span", { class: "figure-value" }, String(values[i])),
        h("span", { class: "figure-label" }, label),
      ),
    ),
  );
}

// --- devices ------------------------------------------------------------------------------

function odataText(value) {
  return `'${value.replace(/'/g, "''")}'`;
}

async function devices(params) {
  const q = params.get("q") || "";
  const status = params.get("status") || "";
  const online = params.get("online") || "";
  const after = params.get("after") || "";
  const trail = (params.get("trail") || "").split(",").filter(Boolean);

  const search = h("input", { id: "device-search", type: "search", value: q });
  const statusSelect = h(
    "select",
    { id: "device-status" },
    h("option", { value: "" }, "Any status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === status }, s)),
  );
  const onlineSelect = h(
    "select",
    { id: "device-online" },
    h("option", { value: "" }, "Online or not"),
    h("option", { value: "true", selected: online === "true" }, "Online"),
    h("option", { value: "false", selected: online === "false" }, "Offline"),
  );
  const filters = h(
    "form",
    { class: "filters", role: "search" },
    h("div", { class: "field" }, h("label", { for: "device-search" }, "Name contains"), search),
    h("div", { class: "field" }, h("label", { for: "device-status" }, "Status"), statusSelect),
    h("div", { class: "field" }, h("label", { for: "device-online" }, "Presence"), onlineSelect),
    h("button", { type: "submit" }, "Filter"),
  );
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    go("/devices", { q: search.value, status: statusSelect.value, online: onlineSelect.value });
  });
  const results = h("div", { "aria-busy": "true" }, "Loading devices…");
  page("Devices", filters, results);

  const query = { limit: PAGE_SIZE, after, status, online, include: "totalCount" };
  if (q) query.$filter = `contains(name,${odataText(q)})`;
  const listing = await session.call("GET", "/api/v1/devices", { params: query });
  const rows = listing.data.map((d) =>
    h(
      "tr",
      {},
      h("td", {}, h("a", { href: `#/devices/${d.id}` }, d.name)),
      h("td", {}, badge(d.status)),
      h("td", {}, d.online ? badge("online", "online") : badge("offline", "offline")),
      h("td", { title: when(d.lastSeenAt) }, ago(d.lastSeenAt)),
    ),
  );
  const base = { q, status, online };
  const nav = h("div", { class: "pager" });
  if (trail.length || after) {
    const previous = trail.slice(0, -1);
    nav.append(
      h(
        "button",
        {
          type: "button",
          onclick: () =>
            go("/devices", { ...base, after: trail.at(-1) || "", trail: previous.join(",") }),
        },
        "Previous page",
      ),
    );
  }
  if (listing.hasMore && listing.data.length) {
    const next = listing.data.at(-1).id;
    nav.append(
      h(
        "button",
        {
          type: "button",
          onclick: () =>
            go("/devices", { ...base, after: next, trail: [...trail, after].join(",") }),
        },
        "Next page",
      ),
    );
  }
  results.removeAttribute("aria-busy");
  results.replaceChildren(
    h("p", {}, `${listing.totalCount ?? listing.data.length} devices match.`),
    rows.length
      ? table("Devices", ["Name", "Status", "Presence", "Last seen"], rows)
      : h("p", {}, "No device matches."),
    nav,
  );
}

// --- a device ------------------------------------------------------------------------------

function pickInterval(rangeSeconds, widthPixels) {
  // The shortest bucket that still gives no more buckets than the chart has pixels.
  const most = Math.max(10, Math.floor(widthPixels));
  for (const [name, seconds] of INTERVALS) {
    if (rangeSeconds / seconds <= most) return [name, seconds];
  }
  return INTERVALS.at(-1);
}

async function aggregated(deviceId, sensor, from, to, interval, buckets) {
  const rows = [];
  let after;
  // One page usually (limit = the bucket count); the cursor is followed if not.
  do {
    const listing = await session.call("GET", "/api/v1/readings/aggregated", {
      params: {
        deviceId,
        sensor,
        interval,
        fn: "avg,min,max",
        from: from.toISOString(),
        to: to.toISOString(),
        limit: Math.min(10080, buckets + 2),
        after,
      },
    });
    rows.push(...listing.data);
    after = listing.hasMore ? listing.after : undefined;
  } while (after);
  return rows;
}

async function drawChart(holder, deviceId, sensor, rangeKey) {
  const [, label, seconds] = RANGES.find((r) => r[0] === rangeKey) || RANGES[2];
  const width = Math.max(280, holder.clientWidth || 600);
  const [interval, bucketSeconds] = pickInterval(seconds, width);
  const to = new Date();
  const from = new Date(to.getTime() - seconds * 1000);
  holder.setAttribute("aria-busy", "true");
  const rows = await aggregated(deviceId, sensor, from, to, interval, Math.ceil(seconds / bucketSeconds));
  holder.removeAttribute("aria-busy");
  holder.replaceChildren();
  const summary = h(
    "p",
    { class: "hint", id: "chart-summary" },
    `${sensor}, ${label.toLowerCase()}: ${rows.length} buckets of ${interval} (average, minimum, maximum).`,
  );
  if (!rows.length) {
    holder.append(summary, h("p", { class: "empty" }, "No readings in this range."));
    return;
  }
  const xs = rows.map((r) => new Date(r.ts).getTime() / 1000);
  const series = (key) => rows.map((r) => (r[key] === undefined ? null : r[key]));
  const plot = h("div", {
    class: "chart",
    role: "img",
    "aria-label": `Chart of ${sensor} over the ${label.toLowerCase()}`,
    "aria-describedby": "chart-summary",
  });
  holder.append(summary, plot);
  // eslint-disable-next-line no-undef
  new uPlot(
    {
      width,
      height: 260,
      scales: { x: { time: true } },
      series: [
        {},
        { label: "avg", stroke: "#0b57d0", width: 2 },
        { label: "min", stroke: "#5f6368", dash: [4, 4] },
        { label: "max", stroke: "#b3261e", dash: [4, 4] },
      ],
      axes: [{ stroke: "#1f1f1f" }, { stroke: "#1f1f1f" }],
    },
    [xs, series("avg"), series("min"), series("max")],
    plot,
  );
}

async function device(id) {
  const d = await session.call("GET", `/api/v1/devices/${encodeURIComponent(id)}`);
  const facts = h(
    "dl",
    { class: "facts" },
    h("dt", {}, "Status"),
    h("dd", {}, badge(d.status)),
    h("dt", {}, "Presence"),
    h("dd", {}, d.online ? badge("online", "online") : badge("offline", "offline")),
    h("dt", {}, "Last seen"),
    h("dd", { title: when(d.lastSeenAt) }, ago(d.lastSeenAt)),
    h("dt", {}, "Type"),
    h("dd", {}, d.deviceType || "—"),
    h("dt", {}, "Id"),
    h("dd", { class: "mono" }, d.id),
  );
  const latestHolder = h("section", { "aria-labelledby": "latest-title" });
  const chartHolder = h("div", { class: "chart-holder" });
  const sensorSelect = h("select", { id: "chart-sensor" });
  const rangeSelect = h(
    "select",
    { id: "chart-range" },
    RANGES.map(([key, label]) => h("option", { value: key, selected: key === "24h" }, label)),
  );
  const chartForm = h(
    "form",
    { class: "filters" },
    h("div", { class: "field" }, h("label", { for: "chart-sensor" }, "Sensor"), sensorSelect),
    h("div", { class: "field" }, h("label", { for: "chart-range" }, "Range"), rangeSelect),
    h("button", { type: "submit" }, "Show"),
  );
  const alertsHolder = h("section", { "aria-labelledby": "device-alerts-title" });
  page(
    d.name,
    facts,
    latestHolder,
    h(
      "section",
      { "aria-labelledby": "chart-title" },
      h("h2", { id: "chart-title" }, "Readings"),
      chartForm,
      chartHolder,
    ),
    alertsHolder,
  );

  const latest = await session.call("GET", "/api/v1/readings/latest", {
    params: { deviceId: d.id, limit: 100 },
  });
  const sensors = latest.data.map((r) => r.sensor);
  latestHolder.replaceChildren(
    h("h2", { id: "latest-title" }, "Sensors and latest values"),
    latest.data.length
      ? table(
          "Latest value of each sensor",
          ["Sensor", "Value", "At"],
          latest.data.map((r) =>
            h(
              "tr",
              {},
              h("td", {}, r.sensor),
              h("td", { class: "num" }, String(r.value)),
              h("td", { title: when(r.ts) }, ago(r.ts)),
            ),
          ),
        )
      : h("p", {}, "No readings yet."),
  );
  sensorSelect.replaceChildren(...sensors.map((s) => h("option", { value: s }, s)));
  const show = () =>
    sensors.length
      ? drawChart(chartHolder, d.id, sensorSelect.value, rangeSelect.value).catch(failed)
      : chartHolder.replaceChildren(h("p", { class: "empty" }, "No sensor to chart."));
  chartForm.addEventListener("submit", (event) => {
    event.preventDefault();
    show();
  });
  await show();

  const alerts = await session.call("GET", "/api/v1/alerts", {
    params: { deviceId: d.id, limit: 10, order: "DESC" },
  });
  alertsHolder.replaceChildren(
    h("h2", { id: "device-alerts-title" }, "Recent alerts"),
    alerts.data.length ? alertTable("Recent alerts of this device", alerts.data, () => device(id)) : h("p", {}, "No alerts."),
  );
}

// --- alerts -------------------------------------------------------------------------------

const dialog = document.getElementById("transition");
let pending = null;

document.getElementById("transition-cancel").addEventListener("click", () => dialog.close());
document.getElementById("transition-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!pending) return;
  const { alert, action, done } = pending;
  const comment = document.getElementById("transition-comment").value.trim();
  try {
    await session.call("POST", `/api/v1/alerts/${alert.id}/${action}`, {
      body: comment ? { comment } : {},
    });
    dialog.close();
    say(`Alert ${action === "acknowledge" ? "acknowledged" : "resolved"}.`);
    pending = null;
    await done();
  } catch (e) {
    dialog.close();
    failed(e);
  }
});

function transition(alert, action, done) {
  pending = { alert, action, done };
  const verb = action === "acknowledge" ? "Acknowledge" : "Resolve";
  document.getElementById("transition-title").textContent = `${verb} alert`;
  document.getElementById("transition-what").textContent =
    `${alert.severity}: ${alert.trigger?.condition || alert.sensor || "alert"} (opened ${when(alert.openedAt)})`;
  document.getElementById("transition-confirm").textContent = verb;
  document.getElementById("transition-comment").value = "";
  dialog.showModal();
  document.getElementById("transition-comment").focus();
}

function alertTable(caption, alerts, done) {
  return table(
    caption,
    ["Severity", "Condition", "Device", "Opened", "Status", "Actions"],
    alerts.map((a) =>
      h(
        "tr",
        { "data-alert": a.id },
        h("td", {}, badge(a.severity)),
        h("td", {}, a.trigger?.condition || a.sensor || "—"),
        h("td", {}, h("a", { href: `#/devices/${a.deviceId}` }, shortId(a.deviceId))),
        h("td", { title: when(a.openedAt) }, ago(a.openedAt)),
        h(
          "td",
          {},
          badge(a.status),
          a.acknowledgeComment ? h("span", { class: "hint" }, ` “${a.acknowledgeComment}”`) : null,
        ),
        h(
          "td",
          { class: "row-actions" },
          a.status === "OPEN"
            ? h(
                "button",
                { type: "button", onclick: () => transition(a, "acknowledge", done) },
                "Acknowledge",
              )
            : null,
          a.status !== "RESOLVED"
            ? h("button", { type: "button", onclick: () => transition(a, "resolve", done) }, "Resolve")
            : null,
        ),
      ),
    ),
  );
}

async function alerts(params) {
  const status = params.get("status") || "OPEN";
  const after = params.get("after") || "";
  const statusSelect = h(
    "select",
    { id: "alert-status" },
    ["OPEN", "ACKNOWLEDGED", "RESOLVED"].map((s) =>
      h("option", { value: s, selected: s === status }, s),
    ),
  );
  const filters = h(
    "form",
    { class: "filters" },
    h("div", { class: "field" }, h("label", { for: "alert-status" }, "Status"), statusSelect),
    h("button", { type: "submit" }, "Filter"),
  );
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    go("/alerts", { status: statusSelect.value });
  });
  const results = h("div", {}, "Loading alerts…");
  page("Alerts", filters, results);
  const listing = await session.call("GET", "/api/v1/alerts", {
    params: { status, after, limit: PAGE_SIZE, order: "DESC" },
  });
  const nav = h("div", { class: "pager" });
  if (after) nav.append(h("a", { href: `#/alerts?status=${status}` }, "First page"));
  if (listing.hasMore && listing.data.length) {
    nav.append(
      h("a", { href: `#/alerts?status=${status}&after=${listing.data.at(-1).id}` }, "Next page"),
    );
  }
  results.replaceChildren(
    listing.data.length
      ? alertTable(`${status} alerts`, listing.data, () => alerts(params))
      : h("p", {}, `No ${status.toLowerCase()} alerts.`),
    nav,
  );
}

// --- the router ---------------------------------------------------------------------------

function markCurrent(path) {
  const section = path.startsWith("/devices") ? "#/devices" : path.startsWith("/alerts") ? "#/alerts" : "#/";
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// Live updates: the overview and the alerts list follow the organization's timeline and
// refresh when an entry arrives (not polling), unless a dialog is open.
let stopLive = null;
let liveTimer = null;

function goLive() {
  if (stopLive) return;
  stopLive = session.follow(() => {
    clearTimeout(liveTimer);
    liveTimer = setTimeout(async () => {
      const { path } = hashParams();
      const livePage = path === "/" || path === "" || path === "/alerts";
      if (!livePage || dialog.open || !session.current()) return;
      quiet = true;
      try {
        await render();
      } finally {
        quiet = false;
      }
    }, 250);
  });
}

function stopFollowing() {
  if (stopLive) stopLive();
  stopLive = null;
}

async function render() {
  if (!session.current()) return;
  const { path, params } = hashParams();
  markCurrent(path);
  goLive();
  try {
    if (path === "/" || path === "") await overview();
    else if (path === "/devices") await devices(params);
    else if (path.startsWith("/devices/")) await device(decodeURIComponent(path.slice(9)));
    else if (path === "/alerts") await alerts(params);
    else page("Not found", h("p", {}, "No such page."), h("a", { href: "#/" }, "Overview"));
  } catch (e) {
    failed(e);
  }
}

function start() {
  showChrome(true);
  render();
}

window.addEventListener("hashchange", render);

(async () => {
  try {
    if (await session.resume()) start();
    else showSignIn();
  } catch (e) {
    showSignIn();
    failed(e);
  }
})();
