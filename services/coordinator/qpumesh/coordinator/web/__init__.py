"""The coordinator's HTTP side: the live dashboard, its JSON API and ``/metrics``.

- ``http_server``: ``DashboardServer`` (routes, the one access-control hook);
- ``views``: the data every page and API answer shows; ``pages``: the HTML;
- ``node_faults``: the fault controls, through each node's ``NodeAdmin``;
- ``static/``: the page's script and style, and uPlot (MIT, vendored with its licence).
"""
