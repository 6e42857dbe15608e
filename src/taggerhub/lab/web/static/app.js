// taggerhub live lab page: log in, then one WebSocket brings rates, settings, status and the histogram.
"use strict";

const $ = (sel) => document.querySelector(sel);
const HISTORY = 300;               // rolling plot: the last 300 updates (30 s at 10 updates/s)
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const state = {ws: null, hello: null, channels: [], times: [], series: [], mean: [], last: [], ratesPlot: null,
               hist: null, histPlot: null, settings: {}, status: null, sessions: null, pending: new Map(),
               nextId: 1, updates: [], received: 0, stopped: false};

function banner(text, kind) {
  const el = $("#banner");
  el.textContent = text;
  el.className = kind || "error";
  el.hidden = !text;
  clearTimeout(banner.timer);
  if (kind === "info") banner.timer = setTimeout(() => { el.hidden = true; }, 4000);
}

function fmtRate(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  if (v >= 1e6) return (v / 1e6).toFixed(3) + " MHz";
  if (v >= 1e3) return (v / 1e3).toFixed(2) + " kHz";
  return v.toFixed(1) + " Hz";
}

function fmtAxis(v) {  // tick labels: short, no trailing zeros
  if (v >= 1e6) return +(v / 1e6).toPrecision(3) + " MHz";
  if (v >= 1e3) return +(v / 1e3).toPrecision(3) + " kHz";
  return +v.toPrecision(3) + " Hz";
}

// -- login ------------------------------------------------------------------------------------
async function checkLogin() {
  const res = await fetch("/api/me");
  const body = await res.json();
  if (res.ok) return start(body);
  $("#cert-hint").hidden = !body.cert_login;
  $("#login").hidden = false;
  $("#app").hidden = true;
  $("#who").hidden = true;
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#login-error").textContent = "";
  const res = await fetch("/api/login", {method: "POST", headers: {"Content-Type": "application/json"},
                                         body: JSON.stringify({token: $("#token").value})});
  const body = await res.json();
  if (!res.ok) { $("#login-error").textContent = body.error; return; }
  $("#token").value = "";
  start(body);
});

$("#logout").addEventListener("click", async () => {
  state.stopped = true;
  if (state.ws) state.ws.close();
  await fetch("/api/logout", {method: "POST"});
  location.reload();
});

function start(who) {
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#who").hidden = false;
  $("#user").textContent = who.user;
  $("#role").textContent = who.role;
  connect();
}

// -- the WebSocket -----------------------------------------------------------------------------
function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  state.ws = ws;
  ws.onmessage = (ev) => handle(JSON.parse(ev.data));
  ws.onclose = (ev) => {
    if (state.stopped) return;
    if (ev.code === 4401) { checkLogin(); return; }
    banner("connection to the page server lost; reconnecting…", "error");
    setTimeout(connect, 2000);
  };
}

function send(message) {
  const id = state.nextId++;
  state.ws.send(JSON.stringify({...message, id}));
  return new Promise((resolve) => state.pending.set(id, resolve));
}

function handle(msg) {
  switch (msg.type) {
    case "hello": return onHello(msg);
    case "rates": return onRates(msg);
    case "settings": state.settings = msg.channels; return renderSettings();
    case "status": state.status = msg; return renderStatus();
    case "histogram": state.hist = msg; return renderHistogram();
    case "result": {
      const resolve = state.pending.get(msg.id);
      state.pending.delete(msg.id);
      if (!msg.ok) banner(msg.message, "error");
      if (resolve) resolve(msg);
      return;
    }
    case "fatal": banner(msg.message, "error"); return;
  }
}

function onHello(msg) {
  state.hello = msg;
  state.channels = msg.channels;
  $("#device").textContent = `— ${msg.serial} (${msg.model})`;
  $("#role").textContent = msg.role;
  banner("", "info");
  state.times = [];
  state.series = msg.channels.map(() => []);
  buildRates();
  buildSettings();
}

// -- count rates ---------------------------------------------------------------------------------
function buildRates() {
  const body = $("#rates-table tbody");
  body.innerHTML = "";
  for (const ch of state.channels) {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td>${ch}</td><td id="rate-${ch}" class="num">–</td><td id="live-${ch}" class="num">–</td>`;
    body.appendChild(tr);
  }
  const el = $("#rates-plot");
  el.innerHTML = "";
  const opts = {
    width: Math.max(400, el.clientWidth || 600), height: 260,
    scales: {x: {time: true}, y: {distr: 3}},
    series: [{}, ...state.channels.map((ch, i) => ({label: `ch ${ch}`, stroke: COLORS[i % COLORS.length],
                                                      value: (u, v) => fmtRate(v)}))],
    axes: [{}, {values: (u, vals) => vals.map((v) => (v === null ? "" : fmtAxis(v))), size: 70}],
  };
  state.ratesPlot = new uPlot(opts, [[], ...state.channels.map(() => [])], el);
}

function onRates(msg) {
  state.received += 1;
  state.mean = msg.mean;
  state.last = msg.rates;
  state.times.push(msg.t);
  msg.rates.forEach((r, i) => state.series[i].push(r > 0 ? r : null));  // log axis: no zeros
  if (state.times.length > HISTORY) { state.times.shift(); state.series.forEach((s) => s.shift()); }
  state.channels.forEach((ch, i) => {
    const cell = $(`#rate-${ch}`);
    cell.textContent = fmtRate(msg.mean[i]);
    cell.dataset.value = msg.mean[i];
    $(`#live-${ch}`).textContent = fmtRate(msg.rates[i]);
  });
  const now = performance.now();
  state.updates.push(now);
  while (state.updates.length && now - state.updates[0] > 2000) state.updates.shift();
  $("#rates-hz").textContent = `${(state.updates.length / 2).toFixed(1)} updates/s`;
  $("#rates-hz").dataset.value = state.updates.length / 2;
  state.ratesPlot.setData([state.times, ...state.series]);
}

// -- live histogram ------------------------------------------------------------------------------
$("#hist-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const answer = await send({op: "histogram", kind: $("#hist-kind").value, click: $("#hist-click").value,
                             start: $("#hist-start").value, binwidth_ps: $("#hist-binwidth").value,
                             bins: $("#hist-bins").value});
  if (answer.ok) { state.hist = null; if (state.histPlot) state.histPlot.destroy(); state.histPlot = null;
                   banner(`${answer.value.kind} started`, "info"); }
});
$("#hist-stop").addEventListener("click", () => send({op: "stop_histogram"}));

function renderHistogram() {
  const h = state.hist;
  const el = $("#hist-plot");
  const xs = h.index_ps.map((x) => x / 1000);
  $("#hist-info").textContent = `${h.kind}(${h.click}, ${h.start}), ${h.bins} × ${h.binwidth_ps} ps, ` +
                                `${h.seconds.toFixed(1)} s, ${h.counts.reduce((a, b) => a + b, 0)} counts`;
  if (!state.histPlot) {
    el.innerHTML = "";
    state.histPlot = new uPlot({width: Math.max(400, el.clientWidth || 600), height: 260,
      scales: {x: {time: false}}, series: [{label: "τ (ns)"}, {label: "counts", stroke: "#1f77b4",
      fill: "rgba(31,119,180,0.15)"}], axes: [{label: "τ (ns)"}, {size: 60}]}, [xs, h.counts], el);
  } else {
    state.histPlot.setData([xs, h.counts]);
  }
}

// -- device settings and the lease -----------------------------------------------------------------
const FIELDS = [["trigger_level", "number", "0.001"], ["delay", "number", "1"], ["deadtime", "number", "1"],
                ["test_signal", "checkbox", null]];

function buildSettings() {
  const body = $("#settings-table tbody");
  body.innerHTML = "";
  for (const ch of state.channels) {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td>${ch}</td>` + FIELDS.map(([name, type, step]) =>
      `<td><input id="set-${name}-${ch}" type="${type}" ${step ? `step="${step}"` : ""}
        data-channel="${ch}" data-name="${name}"></td>`).join("");
    body.appendChild(tr);
  }
  body.querySelectorAll("input").forEach((input) => input.addEventListener("change", async () => {
    const value = input.type === "checkbox" ? input.checked : input.value;
    const answer = await send({op: "set", channel: Number(input.dataset.channel), name: input.dataset.name, value});
    if (answer.ok) {  // what the device took (it may round), shown at once, not at the next refresh
      state.settings[input.dataset.channel][input.dataset.name] = answer.value;
      banner(`channel ${input.dataset.channel}: ${input.dataset.name.replace("_", " ")} = ${answer.value}`, "info");
    }
    renderSettings(true);  // a refused change shows the device's value again
  }));
}

function renderSettings(force) {
  for (const [ch, values] of Object.entries(state.settings)) {
    for (const [name] of FIELDS) {
      const input = $(`#set-${name}-${ch}`);
      if (!input || (!force && document.activeElement === input)) continue;  // the user is typing here
      if (input.type === "checkbox") input.checked = values[name]; else input.value = values[name];
    }
  }
}

$("#lease-take").addEventListener("click", async () => {
  const answer = await send({op: "lease", action: "acquire", seconds: $("#lease-seconds").value});
  if (answer.ok) banner(`you hold the control lease for ${answer.value} s`, "info");
});
$("#lease-release").addEventListener("click", () => send({op: "lease", action: "release"}));

// -- sessions and health ------------------------------------------------------------------------------
function renderStatus() {
  const {status, sessions, rtt_ms, overflows} = state.status;
  const you = status.you || {};
  const lease = status.lease;
  const holder = $("#lease-holder");
  holder.textContent = lease ? `held by ${lease.user} (session ${lease.session}` +
    `${lease.session === you.session ? ", this page" : ""}), ${Math.round(lease.seconds_left)} s left` : "free";
  holder.dataset.user = lease ? lease.user : "";
  let hint = "";
  if (you.role === "observer") hint = "You are an observer: the server refuses setting changes (operators only).";
  else if (lease && lease.session !== you.session) hint = `Settings are locked: ${lease.user} holds the control lease.`;
  else hint = lease ? "You hold the control lease: only you can change settings." :
                      "No one holds the control lease: any operator can change settings.";
  $("#settings-hint").textContent = hint;

  const body = $("#sessions-table tbody");
  body.innerHTML = "";
  $("#sessions-table").hidden = !sessions;
  const count = (n) => `${n} session${n === 1 ? "" : "s"} connected.`;
  $("#sessions-note").textContent = sessions ? count(sessions.length) :
    `${count(status.sessions)} Only admins see who they are` +
    (lease ? `; the control lease is held by ${lease.user}.` : "; no one holds the control lease.");
  for (const s of sessions || []) {
    const tr = document.createElement("tr");
    const cells = [s.id + (s.you ? " (this page)" : ""), s.user, s.role, s.address,
                   new Date(s.since * 1000).toLocaleTimeString(), s.calls, s.objects_owned, s.lease ? "holds it" : ""];
    cells.forEach((c) => { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); });
    if (s.lease) tr.className = "lease";
    body.appendChild(tr);
  }

  const up = status.uptime_s;
  const rows = [["server", `taggerhub ${status.version}`], ["backend", `${status.backend} ${status.backend_version}`],
    ["devices", status.devices.map((d) => `${d.serial} (${d.model})`).join(", ") || "none open"],
    ["sessions", status.sessions], ["objects", status.objects],
    ["uptime", `${Math.floor(up / 3600)} h ${Math.floor(up / 60) % 60} min ${Math.floor(up % 60)} s`],
    ["round trip", `${rtt_ms.toFixed(2)} ms`], ["overflows", overflows],
    ["you", `${you.user} (${you.role}), session ${you.session}`]];
  $("#health").innerHTML = "";
  for (const [k, v] of rows) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v; dd.id = `health-${k.replace(" ", "-")}`;
    $("#health").append(dt, dd);
  }
}

// -- export what is on screen ----------------------------------------------------------------------
function download(name, blob) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}
const csv = (rows) => new Blob([rows.map((r) => r.join(",")).join("\n") + "\n"], {type: "text/csv"});
const stamp = () => new Date().toISOString().replace(/[:.]/g, "-");

function png(plot, name) {
  if (!plot) { banner("nothing to export yet", "error"); return; }
  plot.ctx.canvas.toBlob((blob) => download(name, blob), "image/png");
}

const EXPORTS = {
  "rates-csv": () => download(`rates-${stamp()}.csv`, csv([["time_s", ...state.channels.map((c) => `ch${c}_hz`)],
    ...state.times.map((t, i) => [t.toFixed(3), ...state.series.map((s) => s[i] ?? 0)])])),
  "rates-png": () => png(state.ratesPlot, `rates-${stamp()}.png`),
  "hist-csv": () => state.hist ? download(`${state.hist.kind.toLowerCase()}-${stamp()}.csv`,
    csv([["tau_ps", "counts"], ...state.hist.index_ps.map((x, i) => [x, state.hist.counts[i]])]))
    : banner("start a histogram first", "error"),
  "hist-png": () => png(state.histPlot, `histogram-${stamp()}.png`),
  "settings-csv": () => download(`settings-${stamp()}.csv`, csv([["channel", ...FIELDS.map(([n]) => n)],
    ...Object.entries(state.settings).map(([ch, v]) => [ch, ...FIELDS.map(([n]) => v[n])])])),
  "sessions-csv": () => download(`sessions-${stamp()}.csv`, csv([["session", "user", "role", "address", "since",
    "calls", "objects", "lease"], ...(state.status?.sessions || []).map((s) => [s.id, s.user, s.role, s.address,
    s.since, s.calls, s.objects_owned, s.lease])])),
};
document.querySelectorAll("[data-export]").forEach((b) => b.addEventListener("click", () => EXPORTS[b.dataset.export]()));

checkLogin();
