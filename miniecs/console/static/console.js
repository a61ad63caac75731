// miniecs console: renders the server's view (server-sent events) and sends the few actions.
// Hand-written, no library; every number comes from the server's view, which is built from the
// AWS operations the endpoint serves.
"use strict";
(function () {
  const TOKEN = document.querySelector('meta[name="miniecs-console-token"]').content;
  const COLOURS = ["#e8590c", "#2b8a3e", "#1971c2", "#9c36b5", "#c2255c", "#0c8599", "#5c940d", "#a61e4d"];
  const state = { view: null, points: [], colour: {}, nextColour: 0, received: 0, logs: null };
  const $ = (id) => document.getElementById(id);
  const esc = (v) => String(v == null ? "" : v).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
  const num = (v, d) => (v == null ? "–" : Number(v).toFixed(d == null ? 0 : d));
  const pct = (v) => (v == null ? "–" : Number(v).toFixed(1) + " %");
  const st = (v) => '<span class="s-' + esc(v) + '">' + esc(v || "–") + "</span>";
  const clock = (t) => (t == null ? "–" : new Date(t * 1000).toISOString().substring(11, 19));
  const colourOf = (id) => {
    if (!(id in state.colour)) state.colour[id] = COLOURS[state.nextColour++ % COLOURS.length];
    return state.colour[id];
  };

  // charts (SVG) ---------------------------------------------------------------------------
  const W = 520, H = 170, L = 34, R = 8, T = 8, B = 20;
  function frame(x0, x1, yMax, yLabel, steps) {
    steps = steps || 4;
    const sx = (t) => L + ((t - x0) / (x1 - x0 || 1)) * (W - L - R);
    const sy = (v) => T + (1 - v / (yMax || 1)) * (H - T - B);
    let g = "";
    for (let i = 0; i <= steps; i++) {
      const v = (yMax * i) / steps, y = sy(v).toFixed(1);
      g += '<line x1="' + L + '" x2="' + (W - R) + '" y1="' + y + '" y2="' + y + '" stroke="#e9ecef"/>';
      g += '<text x="' + (L - 3) + '" y="' + (+y + 3) + '" text-anchor="end">' + Math.round(v) + "</text>";
    }
    const span = x1 - x0;
    const step = [10, 30, 60, 120, 300, 600, 1200, 1800, 3600].find((d) => span / d <= 6) || 7200;
    for (let back = 0; back <= span; back += step) {
      const x = sx(x1 - back).toFixed(1);
      const label = back === 0 ? "now" : step < 60 ? "-" + back + "s" : "-" + back / 60 + "m";
      g += '<text x="' + x + '" y="' + (H - 6) + '" text-anchor="middle">' + label + "</text>";
    }
    g += '<text x="2" y="' + (T + 2) + '" transform="rotate(90 2 ' + (T + 2) + ')">' + esc(yLabel) + "</text>";
    return { sx, sy, g };
  }
  const svg = (inner, label, data) =>
    '<svg viewBox="0 0 ' + W + " " + H + '" role="img" aria-label="' + esc(label) + '"' +
    (data ? ' data-points="' + esc(JSON.stringify(data)) + '"' : "") + ">" + inner + "</svg>";
  const path = (pts, colour, extra) =>
    pts.length ? '<path fill="none" stroke="' + colour + '" ' + (extra || 'stroke-width="1.5"') + ' d="M' +
      pts.map((p) => p[0].toFixed(1) + "," + p[1].toFixed(1)).join("L") + '"/>' : "";

  function start(view) {
    const first = state.points.length ? state.points[0].t : view.now;
    return Math.min(view.now - 60, Math.max(view.now - view.window, first));
  }

  function cpuChart(svc, key, view) {
    const x1 = view.now, x0 = start(view);
    const ids = svc.tasks.map((t) => t.taskId);
    let yMax = 100;
    for (const p of state.points) for (const id of ids) if (p.tasks[id] > yMax) yMax = p.tasks[id];
    const top = Math.ceil(yMax / 25) * 25;
    const f = frame(x0, x1, top, "CPU %", top / 25 <= 6 ? top / 25 : Math.ceil(top / 50));
    let g = f.g;
    for (const id of ids) {
      const pts = state.points.filter((p) => p.t >= x0 && id in p.tasks).map((p) => [f.sx(p.t), f.sy(p.tasks[id])]);
      g += path(pts, colourOf(id));
    }
    const avg = [];
    for (const [t, v] of svc.cpuAverage) {
      if (t + 60 < x0) continue;
      avg.push([f.sx(Math.max(t, x0)), f.sy(v)], [f.sx(Math.min(t + 60, x1)), f.sy(v)]);
    }
    g += path(avg, "#000", 'stroke-width="2.4" stroke-dasharray="6 3"');
    for (const p of svc.scaling ? svc.scaling.policies : []) {
      if (p.metric === "ECSServiceAverageCPUUtilization" && p.targetValue != null) {
        const y = f.sy(p.targetValue).toFixed(1);
        g += '<line x1="' + L + '" x2="' + (W - R) + '" y1="' + y + '" y2="' + y + '" stroke="#c92a2a" stroke-dasharray="2 3"/>';
      }
    }
    return svg(g, "CPU per task of " + key, svc.cpuAverage);
  }

  function countChart(svc, key, view) {
    const x1 = view.now, x0 = start(view);
    const pts = state.points.filter((p) => p.t >= x0 && key in p.services);
    let top = 1;
    for (const p of pts) top = Math.max(top, p.services[key][0], p.services[key][1]);
    const f = frame(x0, x1, top + 1, "tasks", top + 1 > 8 ? 4 : top + 1);
    let g = f.g;
    const step = (i) => {
      const out = [];
      pts.forEach((p, n) => {
        if (n) out.push([f.sx(p.t), out[out.length - 1][1]]);
        out.push([f.sx(p.t), f.sy(p.services[key][i])]);
      });
      return out;
    };
    g += path(step(0), "#1971c2", 'stroke-width="2"');
    g += path(step(1), "#2b8a3e", 'stroke-width="2" stroke-dasharray="5 3"');
    const acts = svc.scaling ? svc.scaling.activities : [];
    acts.forEach((a, i) => {
      if (a.startTime < x0) return;
      const x = f.sx(a.startTime).toFixed(1), n = acts.length - i;
      g += '<line x1="' + x + '" x2="' + x + '" y1="' + T + '" y2="' + (H - B) + '" stroke="#c92a2a"/>';
      g += '<circle cx="' + x + '" cy="' + (T + 7) + '" r="7" fill="#c92a2a"/><text x="' + x + '" y="' + (T + 10) +
        '" text-anchor="middle" style="fill:#fff">' + n + "</text>";
    });
    return svg(g, "desired and running count of " + key);
  }

  function alarmChart(a) {
    const pts = a.datapoints;
    const w = 200, h = 44, max = Math.max(a.threshold || 1, ...pts.map((p) => p[1])) * 1.1 || 1;
    const bw = pts.length ? (w - 4) / pts.length : 0;
    let g = "";
    pts.forEach((p, i) => {
      const bh = (p[1] / max) * (h - 4);
      g += '<rect x="' + (2 + i * bw).toFixed(1) + '" y="' + (h - 2 - bh).toFixed(1) + '" width="' +
        Math.max(1, bw - 2).toFixed(1) + '" height="' + bh.toFixed(1) + '" fill="' + (p[2] ? "#e8590c" : "#74c0fc") +
        '"><title>' + clock(p[0]) + ": " + p[1] + "</title></rect>";
    });
    if (a.threshold != null) {
      const y = (h - 2 - (a.threshold / max) * (h - 4)).toFixed(1);
      g += '<line x1="0" x2="' + w + '" y1="' + y + '" y2="' + y + '" stroke="#c92a2a" stroke-dasharray="3 2"/>';
    }
    return '<svg class="alarm" viewBox="0 0 ' + w + " " + h + '">' + g + "</svg>";
  }

  // rendering --------------------------------------------------------------------------------
  function bar(p) {
    if (p == null) return "–";
    return '<span class="bar"><i class="' + (p > 80 ? "hot" : "") + '" style="width:' + Math.min(100, p).toFixed(0) +
      '%"></i></span>' + pct(p);
  }

  function taskRows(cluster, tasks, key) {
    if (!tasks.length) return '<p class="meta">No tasks.</p>';
    let h = '<div class="scroll"><table><thead><tr><th>task</th><th>status</th><th>health</th><th>private IP</th>' +
      "<th>CPU (units of limit)</th><th>memory (MiB of limit)</th><th>requests</th><th></th></tr></thead><tbody>";
    for (const t of tasks) {
      h += '<tr data-task="' + esc(t.taskId) + '"><td><i style="display:inline-block;width:8px;height:8px;background:' +
        colourOf(t.taskId) + '"></i> <code title="' + esc(t.taskArn) + '">' + esc(t.taskId.substring(0, 8)) + "</code></td>" +
        '<td data-field="lastStatus">' + st(t.lastStatus) + "</td><td>" + st(t.healthStatus) + "</td>" +
        '<td data-field="privateIp">' + esc(t.privateIp || "–") + "</td>" +
        '<td data-field="cpu" data-value="' + esc(t.cpuUtilization) + '">' + bar(t.cpuUtilization) + ' <span class="meta">' +
        num(t.cpuUtilized) + "/" + esc(t.cpu) + "</span></td>" +
        '<td data-field="memory">' + bar(t.memoryUtilization) + ' <span class="meta">' + num(t.memoryUtilized) + "/" +
        esc(t.memory) + "</span></td>" +
        '<td class="n" data-field="requests">' + num(t.requests) + "</td><td>" +
        '<button type="button" data-act="logs" data-cluster="' + esc(cluster) + '" data-task-id="' + esc(t.taskId) + '">logs</button> ' +
        (t.desiredStatus === "RUNNING" ? '<button type="button" class="danger" data-act="stop-task" data-cluster="' +
          esc(cluster) + '" data-task="' + esc(t.taskArn) + '">stop</button>' : "") + "</td></tr>";
    }
    return h + "</tbody></table></div>";
  }

  function scaling(s) {
    if (!s) return '<p class="meta">No scalable target (RegisterScalableTarget to scale this service).</p>';
    let h = '<p>Scalable target <code>' + esc(s.resourceId) + "</code>: min " + s.minCapacity + ", max " + s.maxCapacity + "</p>";
    for (const p of s.policies) {
      h += "<h4>" + esc(p.policyName) + ' <span class="meta">' + esc(p.policyType) +
        (p.targetValue != null ? ", " + esc(p.metric) + " target " + p.targetValue : "") + "</span></h4>";
      for (const a of p.alarms) {
        h += '<div class="row" data-alarm="' + esc(a.name) + '"><span>' + st(a.state) + " <code>" + esc(a.name) +
          '</code></span><span class="meta">' + esc(a.metric) + " " + esc(a.comparison) + " " + num(a.threshold, 2) +
          "</span>" + alarmChart(a) + "</div>";
      }
    }
    h += "<h4>Scaling activities</h4>";
    if (!s.activities.length) h += '<p class="meta">None yet.</p>';
    else {
      h += '<ul class="events">';
      s.activities.forEach((a, i) => {
        h += "<li><b>" + (s.activities.length - i) + "</b> " + clock(a.startTime) + " " + st(a.statusCode) + " " +
          esc(a.description) + ' <span class="meta">' + esc(a.cause) + "</span></li>";
      });
      h += "</ul>";
    }
    if (s.why.length) h += "<h4>Why (the autoscaler's last evaluations)</h4><pre>" + esc(s.why.join("\n")) + "</pre>";
    return h;
  }

  function service(cluster, svc, view) {
    const key = cluster + "/" + svc.serviceName;
    let h = '<div class="card" data-service="' + esc(key) + '"><div class="row"><h3>' + esc(svc.serviceName) + "</h3>" +
      '<span class="counts">desired <b data-field="desiredCount">' + svc.desiredCount + '</b> running <b data-field="runningCount">' +
      svc.runningCount + '</b> pending <b data-field="pendingCount">' + svc.pendingCount + "</b></span>" +
      '<span title="the newest AWS/ECS CPUUtilization datapoint (Average, 60 s)">service CPU <b data-field="cpuAverage">' +
      pct(svc.cpuAverage.length ? svc.cpuAverage[svc.cpuAverage.length - 1][1] : null) + "</b></span>" +
      '<span class="meta">' + esc(svc.taskDefinition) + " · " + st(svc.status) + "</span>" +
      '<span><input type="number" min="0" max="1000" data-keep="desired-' + esc(key) + '" value="' + svc.desiredCount +
      '" aria-label="desired count"> <button type="button" data-act="set-desired-count" data-cluster="' + esc(cluster) +
      '" data-service="' + esc(svc.serviceName) + '">set desired</button> <button type="button" data-act="force-new-deployment" data-cluster="' +
      esc(cluster) + '" data-service="' + esc(svc.serviceName) + '">force new deployment</button></span></div>';
    h += '<div class="grid"><div><h4>CPU per task, % of its limit; dashed: AWS/ECS CPUUtilization (service average)</h4>' +
      cpuChart(svc, key, view) + "</div><div><h4>Tasks: desired (solid), running (dashed), scaling activities (red)</h4>" +
      countChart(svc, key, view) + "</div></div>";
    h += "<h4>Tasks</h4>" + taskRows(cluster, svc.tasks, key);
    h += '<div class="grid"><div><h4>Deployments</h4><div class="scroll"><table><thead><tr><th>status</th><th>task definition</th>' +
      "<th>desired</th><th>running</th><th>pending</th><th>rollout</th></tr></thead><tbody>";
    for (const d of svc.deployments) {
      h += "<tr><td>" + st(d.status) + "</td><td>" + esc(d.taskDefinition) + '</td><td class="n">' + d.desiredCount +
        '</td><td class="n">' + d.runningCount + '</td><td class="n">' + d.pendingCount + "</td><td>" + st(d.rolloutState) +
        ' <span class="meta">' + esc(d.rolloutStateReason) + "</span></td></tr>";
    }
    h += '</tbody></table></div><h4>Events</h4><ul class="events">';
    for (const e of svc.events) h += "<li>" + clock(e.createdAt) + " " + esc(e.message) + "</li>";
    h += "</ul></div><div><h4>Scaling</h4>" + scaling(svc.scaling) + "</div></div></div>";
    return h;
  }

  function clusters(view) {
    if (!view.clusters.length) return '<p class="meta">No clusters yet (CreateCluster).</p>';
    let h = "";
    for (const c of view.clusters) {
      h += '<h2 data-cluster="' + esc(c.clusterName) + '">Cluster ' + esc(c.clusterName) + ' <span class="meta">' +
        c.activeServicesCount + " services, " + c.runningTasksCount + " running, " + c.pendingTasksCount + " pending tasks · Container Insights " +
        '<select data-keep="ci-' + esc(c.clusterName) + '" aria-label="Container Insights">' +
        ["disabled", "enabled", "enhanced"].map((v) => "<option" + (v === c.containerInsights ? " selected" : "") + ">" + v + "</option>").join("") +
        '</select> <button type="button" data-act="container-insights" data-cluster="' + esc(c.clusterName) + '">switch</button></span></h2>';
      for (const s of c.services) h += service(c.clusterName, s, view);
      if (c.tasks.length) h += '<div class="card"><h3>Standalone tasks (RunTask)</h3>' + taskRows(c.clusterName, c.tasks, "") + "</div>";
    }
    return h;
  }

  function loadBalancers(view) {
    if (!view.loadBalancers.length && !view.targetGroups.length) return "";
    let h = "<h2>Load balancers</h2>";
    for (const lb of view.loadBalancers) {
      h += '<div class="card" data-lb="' + esc(lb.name) + '"><div class="row"><h3>' + esc(lb.name) + "</h3>" + st(lb.state) +
        ' <span class="meta">' + esc(lb.dnsName) + '</span><span>requests <b data-field="requests">' + num(lb.requests) +
        '</b></span><span>ELB 5xx <b>' + num(lb.elb5xx) + "</b></span></div>";
      h += '<div class="scroll"><table><thead><tr><th>listener</th><th>priority</th><th>conditions</th><th>actions</th></tr></thead><tbody>';
      for (const l of lb.listeners)
        for (const r of l.rules)
          h += "<tr><td>" + esc(l.protocol) + ":" + l.port + "</td><td>" + esc(r.priority) + "</td><td>" +
            esc(r.conditions.join("; ") || "(any)") + "</td><td>" + esc(r.actions.join("; ")) + "</td></tr>";
      h += "</tbody></table></div></div>";
    }
    for (const g of view.targetGroups) {
      h += '<div class="card" data-tg="' + esc(g.name) + '"><div class="row"><h3>Target group ' + esc(g.name) + '</h3><span class="meta">' +
        esc(g.protocol) + ":" + esc(g.port) + " " + esc(g.targetType) + ", health check " + esc(g.healthCheckPath) + ", " +
        (g.loadBalancers.length ? "behind " + esc(g.loadBalancers.join(", ")) : "no load balancer") + "</span><span>requests <b>" +
        num(g.requests) + "</b></span><span>5xx <b>" + num(g.target5xx) + "</b></span><span>response time <b>" +
        num(g.responseTimeMs, 1) + " ms</b></span></div>";
      h += '<div class="scroll"><table><thead><tr><th>target</th><th>state</th><th>reason</th><th>requests</th></tr></thead><tbody>';
      for (const t of g.targets)
        h += '<tr data-target="' + esc(t.id + ":" + t.port) + '"><td>' + esc(t.id) + ":" + esc(t.port) + '</td><td data-field="state">' +
          st(t.state) + '</td><td data-field="reason">' + esc(t.reason || "") + ' <span class="meta">' + esc(t.description || "") +
          '</span></td><td class="n" data-field="requests">' + num(t.requests) + "</td></tr>";
      h += "</tbody></table></div></div>";
    }
    return h;
  }

  function render() {
    const view = state.view;
    if (!view) return;
    const keep = {};
    document.querySelectorAll("[data-keep]").forEach((el) => {
      if (el.dataset.dirty) keep[el.dataset.keep] = el.value;
    });
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.keep : null;
    $("clusters").innerHTML = clusters(view);
    $("lbs").innerHTML = loadBalancers(view);
    document.querySelectorAll("[data-keep]").forEach((el) => {
      if (el.dataset.keep in keep) { el.value = keep[el.dataset.keep]; el.dataset.dirty = "1"; }
      if (el.dataset.keep === focused) el.focus();
    });
    $("clock").textContent = "control-plane time " + clock(view.now) + " UTC · clock ×" + view.speed + " · updates " + state.received;
    document.body.dataset.updates = state.received;
  }

  // the stream -------------------------------------------------------------------------------
  function connect() {
    const source = new EventSource("/console/stream");
    source.addEventListener("open", () => { $("conn").textContent = "live"; $("conn").className = "conn on"; });
    source.addEventListener("error", () => { $("conn").textContent = "reconnecting…"; $("conn").className = "conn off"; });
    source.addEventListener("history", (e) => { state.points = JSON.parse(e.data); });
    source.addEventListener("view", (e) => {
      const view = JSON.parse(e.data);
      if (view.point && (!state.points.length || view.point.t > state.points[state.points.length - 1].t)) state.points.push(view.point);
      const cut = view.now - view.window;
      while (state.points.length && state.points[0].t < cut) state.points.shift();
      state.view = view;
      state.received++;
      render();
    });
  }

  // actions ----------------------------------------------------------------------------------
  function toast(text) {
    const t = $("toast");
    t.textContent = text;
    t.className = "show";
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.className = ""; }, 4000);
  }

  async function act(name, body) {
    const response = await fetch("/console/actions/" + name, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Miniecs-Console-Token": TOKEN },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    const answer = await response.json().catch(() => ({}));
    toast(response.ok ? name + ": done" : name + " refused: " + (answer.__type || response.status) + " " + (answer.message || ""));
  }

  async function showLogs(cluster, taskId) {
    state.logs = { cluster, taskId };
    $("logs").hidden = false;
    $("logs-task").textContent = taskId.substring(0, 8);
    const follow = async () => {
      if (!state.logs || state.logs.taskId !== taskId) return;
      if (!state.view.logs.available) {
        $("logs-body").textContent = "CloudWatch Logs is not served by this miniecs: no task logs to follow.";
        return;
      }
      const r = await fetch("/console/logs/" + encodeURIComponent(cluster) + "/" + encodeURIComponent(taskId));
      const body = await r.json();
      $("logs-body").textContent = r.ok
        ? body.events.map((e) => new Date(e.timestamp).toISOString().substring(11, 23) + " " + e.message).join("\n")
        : body.message;
      setTimeout(follow, 1000);
    };
    follow();
  }

  document.addEventListener("input", (e) => { if (e.target.dataset && e.target.dataset.keep) e.target.dataset.dirty = "1"; });
  document.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-act]");
    if (!b) return;
    const d = b.dataset;
    if (d.act === "logs") return showLogs(d.cluster, d.taskId);
    if (d.act === "set-desired-count") {
      const input = b.parentElement.querySelector("input");
      delete input.dataset.dirty;
      return act(d.act, { cluster: d.cluster, service: d.service, desiredCount: Number(input.value) });
    }
    if (d.act === "stop-task") return act(d.act, { cluster: d.cluster, task: d.task });
    if (d.act === "force-new-deployment") return act(d.act, { cluster: d.cluster, service: d.service });
    if (d.act === "container-insights") {
      const select = b.parentElement.querySelector("select");
      delete select.dataset.dirty;
      return act(d.act, { cluster: d.cluster, value: select.value });
    }
  });
  $("logs-close").addEventListener("click", () => { state.logs = null; $("logs").hidden = true; });
  connect();
})();
