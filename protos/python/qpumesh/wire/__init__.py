"""Conversions between the qpumesh.v1 messages and numpy/Cirq values, shared by every service."""
