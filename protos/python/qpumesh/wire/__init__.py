"""What every service shares about values crossing process boundaries.

Conversions between the qpumesh.v1 messages and numpy/Cirq values (``tensors``,
``circuits``), and settings given as environment variables and flags (``settings``).
"""
