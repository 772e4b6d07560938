"""The names of a QPU node's simulation engines.

A node is configured with one (``QPUMESH_BACKEND``, ``NodeConfig.backend``) and reports
it in ``GetInfoResponse.backend``; every reply names the engine that ran the request (with
gate noise, a variant such as ``batched-density``). Clients choose and compare engines by
these names (``qpumesh node bench --backends``).
"""

from __future__ import annotations

BACKENDS = ("batched", "qsim", "cirq")
"""``batched`` (torch statevector, the whole batch vectorised), ``qsim``, ``cirq`` (the reference)."""
