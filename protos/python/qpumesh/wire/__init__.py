"""The hand-written half of the qpumesh contract, shared by the node, the coordinator and the client.

The services and the client import, among qpumesh packages, only this package and the
generated ``qpumesh.v1`` (see docs/architecture.md). Here: values on the wire
(``circuits``, ``tensors``, ``records``), the node-call codec (``node_calls``), channels
(``channels``), errors and status codes (``errors``, ``status``), jobs (``job_spec``,
``job_state``), faults (``fault_config``), settings (``settings``, ``units``,
``port_file``) and the engines' names (``backends``). Importing the package is light.
"""
