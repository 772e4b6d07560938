"""The dashboard's HTML, rendered on the server from ``views`` (every value escaped).

A page is complete without its script: the tables hold the data of the moment the page
was served. ``static/dashboard.js`` then refreshes them from ``/api/...`` every second and
draws the charts (uPlot) on the job page. The page embeds its first data set as JSON
(``<script type="application/json" id="initial">``), so the charts need no second fetch.
"""

from __future__ import annotations

import json
import time
from html import escape
from typing import Any

from qpumesh.wire.fault_config import FAULT_OPTIONS

_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/static/uPlot.min.css">
<link rel="stylesheet" href="/static/dashboard.css">
</head><body data-page="{page}">
<header><a href="/" class="brand">qpumesh</a> <span class="muted">{subtitle}</span>
<span class="live" id="live">live</span></header>
<main>
"""
_TAIL = """</main>
<script type="application/json" id="initial">{initial}</script>
<script src="/static/uPlot.iife.min.js"></script>
<script src="/static/dashboard.js"></script>
</body></html>
"""


def _number(value: Any, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def _page(title: str, page: str, subtitle: str, body: str, initial: dict[str, Any]) -> str:
    # "</" cannot end the JSON script element early once escaped as "<\/".
    data = json.dumps(initial, allow_nan=False).replace("</", "<\\/")
    head = _HEAD.format(title=escape(title), page=page, subtitle=escape(subtitle))
    return head + body + _TAIL.format(initial=data)


def node_rows(mesh: dict[str, Any]) -> str:
    """Render the rows of the mesh table."""
    rows = []
    for node in mesh["nodes"]:
        faults = ", ".join(f"{kind} {count}" for kind, count in sorted(node["faults"].items())) or "–"
        health = "healthy" if node["healthy"] else "unhealthy"
        rows.append(
            f'<tr data-node="{escape(node["address"])}"><td>{escape(node["node_id"] or "?")}</td>'
            f"<td><code>{escape(node['address'])}</code></td>"
            f'<td class="{health}">{health}</td><td>{node["max_qubits"]}</td>'
            f"<td>{escape(node['backend'])}</td><td>{node['in_flight']}</td><td>{node['calls']}</td>"
            f"<td>{node['failures']}</td><td>{node['retries']}</td><td>{node['hedges']}</td>"
            f"<td>{node['p50_latency_ms']:.1f}</td><td>{node['p95_latency_ms']:.1f}</td>"
            f"<td>{escape(faults)}</td></tr>"
        )
    return "\n".join(rows) or '<tr><td colspan="13" class="muted">no nodes yet</td></tr>'


def job_rows(jobs: dict[str, Any]) -> str:
    """Render the rows of the jobs table."""
    rows = []
    for job in jobs["jobs"]:
        done, total = job["epochs_done"], job["epochs"]
        job_id, state = escape(job["id"]), escape(job["state"])
        rows.append(
            f'<tr data-job="{job_id}"><td><a href="/jobs/{job_id}">{job_id}</a></td>'
            f'<td>{escape(job["name"] or "–")}</td><td class="state-{state}">{state}</td>'
            f"<td>{escape(job['task'])}</td><td>{escape(job['model'])}</td>"
            f'<td><progress max="{total}" value="{done}"></progress> {done}/{total}</td>'
            f"<td>{_number(job['train_loss'])}</td><td>{_number(job['test_r2'])}</td>"
            f"<td>{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(job['created_at']))}</td></tr>"
        )
    return "\n".join(rows) or '<tr><td colspan="9" class="muted">no jobs yet</td></tr>'


def _fault_form() -> str:
    fields = []
    for option in FAULT_OPTIONS:
        if option.dest == "seed":
            continue
        placeholder = {"hang": "true/false", "jitter_dist": "normal"}.get(option.dest, option.metavar.lower())
        fields.append(
            f'<label title="{escape(option.help)}">{escape(option.dest)} '
            f'<input name="{escape(option.dest)}" placeholder="{escape(placeholder)}" size="9"></label>'
        )
    return f"""<section><h2>Fault injection</h2>
<form id="faults" autocomplete="off">
<label>node <select name="node" id="fault-node"></select></label>
<label>node admin token <input type="password" name="token" id="fault-token" size="12"></label>
<div class="fields">{"".join(fields)}</div>
<button type="submit" name="apply">apply (replaces the node's faults)</button>
<button type="button" id="fault-clear">clear</button> <button type="button" id="fault-show">show</button>
</form><pre id="fault-result" class="muted">Values in qpumesh fault's units: 150ms, 5%, 1MB/s, true.
Empty fields are off.</pre></section>
"""


def overview(mesh: dict[str, Any], jobs: dict[str, Any], faults: bool = True) -> str:
    """Render the front page: the mesh, the fault controls (if ``faults``) and the jobs."""
    body = f"""<section><h2>Mesh <span class="muted" id="mesh-summary"></span></h2>
<table id="nodes"><thead><tr><th>node</th><th>address</th><th>health</th><th>qubits</th><th>engine</th>
<th>in flight</th><th>calls</th><th>failures</th><th>retries</th><th>hedges</th>
<th>p50 ms</th><th>p95 ms</th><th>fault events</th></tr></thead>
<tbody>{node_rows(mesh)}</tbody></table></section>
{_fault_form() if faults else ""}
<section><h2>Jobs</h2>
<table id="jobs"><thead><tr><th>job</th><th>name</th><th>state</th><th>task</th><th>model</th>
<th>progress</th><th>train loss</th><th>test R²</th><th>created</th></tr></thead>
<tbody>{job_rows(jobs)}</tbody></table></section>
"""
    return _page("qpumesh dashboard", "overview", "mesh and jobs", body, {"mesh": mesh, "jobs": jobs})


def job_page(view: dict[str, Any]) -> str:
    """Render one job's page: progress, curves, predictions, events."""
    job, spec = view["job"], view["spec"]
    settings = ", ".join(
        f"{key} {spec[key]}"
        for key in ("task", "model", "qubits", "partitions", "layers", "ansatz", "epochs")
    )
    body = f"""<section><h2>Job <code>{escape(job["id"])}</code> {escape(job["name"])}
<span id="job-state" class="state-{escape(job["state"])}">{escape(job["state"])}</span></h2>
<p class="muted">{escape(settings)}</p>
<p><progress id="job-progress" max="{job["epochs"]}" value="{job["epochs_done"]}"></progress>
<span id="job-epochs">{job["epochs_done"]}/{job["epochs"]}</span> epochs ·
train loss <span id="job-loss">{_number(job["train_loss"])}</span> ·
test R² <span id="job-r2">{_number(job["test_r2"])}</span></p>
<p id="job-error" class="error">{escape(job["error"])}</p></section>
<section class="charts">
<figure><figcaption>loss (MSE) per epoch</figcaption>
<div id="chart-loss" class="chart" data-points="0"></div></figure>
<figure><figcaption>test R² per epoch</figcaption>
<div id="chart-r2" class="chart" data-points="0"></div></figure>
<figure class="wide"><figcaption>best checkpoint's predictions (test windows after the line)</figcaption>
<div id="chart-predictions" class="chart" data-points="0"></div></figure>
</section>
<section><h2>Events</h2><ol id="events" class="events"></ol></section>
"""
    return _page(f"qpumesh job {job['id']}", "job", f"job {job['id']}", body, {"job": view})


def login_page(message: str = "") -> str:
    """Render the login form: the token is posted once and kept in an HttpOnly cookie."""
    error = f'<p class="error">{escape(message)}</p>' if message else ""
    body = f"""<section><h2>Log in</h2>{error}
<form method="post" action="/login" autocomplete="off">
<label>token <input type="password" name="token" size="40" autofocus></label>
<button type="submit">log in</button></form>
<p class="muted">The coordinator's bearer token (its --auth-tokens file). It is kept in a cookie
the page's scripts cannot read, sent only to this coordinator; log out to drop it.</p></section>
"""
    head = _HEAD.format(title="qpumesh: log in", page="login", subtitle="log in")
    return head + body + "</main></body></html>\n"
