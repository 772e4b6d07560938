// qpumesh dashboard: refreshes the server-rendered tables from /api every second and
// draws the job page's charts with uPlot (vendored beside this file). No framework.
"use strict";

(function () {
  const REFRESH_MS = 1000;
  const initial = JSON.parse(document.getElementById("initial").textContent);
  const page = document.body.dataset.page;
  const live = document.getElementById("live");

  function esc(value) {
    return String(value).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]);
  }
  function num(value, digits) {
    return value === null || value === undefined ? "–" : Number(value).toPrecision(digits || 4);
  }
  async function getJSON(url, options) {
    const response = await fetch(url, options);
    if (response.status === 401 && !(options && options.method)) {
      window.location.assign("/login");  // the login cookie expired or was dropped
    }
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }
  function setLive(ok) {
    live.textContent = ok ? "live" : "offline";
    live.className = ok ? "live" : "live offline";
  }
  function poll(task) {
    const run = async () => {
      try { await task(); setLive(true); } catch (error) { setLive(false); console.warn(error); }
      setTimeout(run, REFRESH_MS);
    };
    setTimeout(run, REFRESH_MS);
  }

  // ------------------------------------------------------------------ overview
  function nodeRows(mesh) {
    if (!mesh.nodes.length) return '<tr><td colspan="13" class="muted">no nodes yet</td></tr>';
    return mesh.nodes.map((n) => {
      const faults = Object.keys(n.faults).sort().map((k) => `${k} ${n.faults[k]}`).join(", ") || "–";
      const health = n.healthy ? "healthy" : "unhealthy";
      return `<tr data-node="${esc(n.address)}"><td>${esc(n.node_id || "?")}</td><td><code>${esc(n.address)}</code></td>` +
        `<td class="${health}">${health}</td><td>${n.max_qubits}</td><td>${esc(n.backend)}</td><td>${n.in_flight}</td>` +
        `<td>${n.calls}</td><td>${n.failures}</td><td>${n.retries}</td><td>${n.hedges}</td>` +
        `<td>${n.p50_latency_ms.toFixed(1)}</td><td>${n.p95_latency_ms.toFixed(1)}</td><td>${esc(faults)}</td></tr>`;
    }).join("");
  }
  function jobRows(jobs) {
    if (!jobs.jobs.length) return '<tr><td colspan="9" class="muted">no jobs yet</td></tr>';
    return jobs.jobs.map((j) =>
      `<tr data-job="${esc(j.id)}"><td><a href="/jobs/${esc(j.id)}">${esc(j.id)}</a></td><td>${esc(j.name || "–")}</td>` +
      `<td class="state-${esc(j.state)}">${esc(j.state)}</td><td>${esc(j.task)}</td><td>${esc(j.model)}</td>` +
      `<td><progress max="${j.epochs}" value="${j.epochs_done}"></progress> ${j.epochs_done}/${j.epochs}</td>` +
      `<td>${num(j.train_loss)}</td><td>${num(j.test_r2)}</td>` +
      `<td>${new Date(j.created_at * 1000).toLocaleString()}</td></tr>`).join("");
  }
  function showMesh(mesh) {
    document.querySelector("#nodes tbody").innerHTML = nodeRows(mesh);
    const healthy = mesh.nodes.filter((n) => n.healthy).length;
    document.getElementById("mesh-summary").textContent =
      `${healthy}/${mesh.nodes.length} healthy · ${mesh.counters.rounds} rounds · ${mesh.counters.tasks} tasks`;
    const select = document.getElementById("fault-node");
    if (!select) return;  // no fault controls: not an admin
    const chosen = select.value;
    const addresses = mesh.nodes.map((n) => n.address);
    if (select.options.length !== addresses.length || addresses.some((a, i) => select.options[i].value !== a)) {
      select.innerHTML = addresses.map((a) => `<option value="${esc(a)}">${esc(a)}</option>`).join("");
      if (addresses.includes(chosen)) select.value = chosen;
    }
  }
  async function faultRequest(method, faults) {
    const form = document.getElementById("faults");
    const node = encodeURIComponent(form.node.value);
    const headers = {"X-Qpumesh-Admin-Token": form.token.value, "Content-Type": "application/json"};
    const options = method === "GET" ? {headers} : {method, headers, body: JSON.stringify({faults})};
    const out = document.getElementById("fault-result");
    try {
      const reply = await getJSON(`/api/faults?node=${node}`, options);
      const c = reply.counters;
      out.textContent = `${reply.node}: ${reply.described}\ncounters: calls ${c.calls}, delayed ${c.delayed}, ` +
        `errors ${c.injected_errors}, hung ${c.hung}`;
      out.className = "";
    } catch (error) {
      out.textContent = String(error.message || error);
      out.className = "error";
    }
  }
  function setupOverview() {
    showMesh(initial.mesh);
    const form = document.getElementById("faults");
    if (form) setupFaults(form);
    poll(async () => {
      const [mesh, jobs] = await Promise.all([getJSON("/api/mesh"), getJSON("/api/jobs")]);
      showMesh(mesh);
      document.querySelector("#jobs tbody").innerHTML = jobRows(jobs);
    });
  }
  function setupFaults(form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const faults = {};
      form.querySelectorAll(".fields input").forEach((input) => { if (input.value.trim()) faults[input.name] = input.value.trim(); });
      faultRequest("POST", faults);
    });
    document.getElementById("fault-clear").addEventListener("click", () => faultRequest("POST", {}));
    document.getElementById("fault-show").addEventListener("click", () => faultRequest("GET"));
  }

  // ------------------------------------------------------------------ job page
  const charts = {};
  function chart(id, series, data, options) {
    const element = document.getElementById(id);
    const width = Math.max(320, element.clientWidth || 480);
    if (!charts[id]) {
      charts[id] = new uPlot(Object.assign({width, height: 260, series, legend: {live: false}}, options || {}), data, element);
    } else {
      charts[id].setData(data);
    }
    element.dataset.points = String(data[0].length);
  }
  const lossScale = {x: {time: false}, y: {distr: 3}};
  function showJob(view) {
    const job = view.job;
    document.getElementById("job-state").textContent = job.state;
    document.getElementById("job-state").className = `state-${job.state}`;
    const progress = document.getElementById("job-progress");
    progress.max = job.epochs;
    progress.value = job.epochs_done;
    document.getElementById("job-epochs").textContent = `${job.epochs_done}/${job.epochs}`;
    document.getElementById("job-loss").textContent = num(job.train_loss);
    document.getElementById("job-r2").textContent = num(job.test_r2);
    document.getElementById("job-error").textContent = job.error;
    const c = view.curves;
    chart("chart-loss", [{label: "epoch"}, {label: "train", stroke: "#1f77b4"}, {label: "test", stroke: "#ff7f0e"}],
      [c.epoch, c.train_loss, c.test_loss], {scales: lossScale});
    chart("chart-r2", [{label: "epoch"}, {label: "test R²", stroke: "#2ca02c"}], [c.epoch, c.test_r2],
      {scales: {x: {time: false}}});
    document.getElementById("events").innerHTML = view.events.map((e) =>
      `<li class="event-${esc(e.kind)}"><span class="muted">${new Date(e.time * 1000).toLocaleTimeString()}</span> ` +
      `${esc(e.text)}</li>`).join("");
  }
  let predictedAt = -1;
  async function showPredictions(view) {
    const done = view.job.epochs_done;
    if (done === predictedAt || done === 0) return;
    predictedAt = done;
    const p = await getJSON(`/api/jobs/${encodeURIComponent(view.job.id)}/predictions`);
    const index = p.targets.map((_, i) => i);
    const split = p.train_size;
    chart("chart-predictions", [{label: "window"}, {label: "target", stroke: "#444"}, {label: "prediction", stroke: "#d62728"}],
      [index, p.targets, p.predictions], {
        scales: {x: {time: false}},
        hooks: {draw: [(u) => {
          const x = Math.round(u.valToPos(split, "x", true));
          const ctx = u.ctx;
          ctx.save(); ctx.strokeStyle = "#999"; ctx.setLineDash([4, 4]); ctx.beginPath();
          ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke(); ctx.restore();
        }]},
      });
  }
  function setupJob() {
    const view = initial.job;
    showJob(view);
    showPredictions(view).catch(console.warn);
    poll(async () => {
      const fresh = await getJSON(`/api/jobs/${encodeURIComponent(view.job.id)}`);
      showJob(fresh);
      await showPredictions(fresh);
    });
  }

  if (page === "overview") setupOverview();
  if (page === "job") setupJob();
  window.qpumeshCharts = charts;
})();
