"""The QPU node service: one emulated quantum processor behind a gRPC API."""
