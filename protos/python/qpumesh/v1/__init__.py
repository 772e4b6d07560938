"""Generated protobuf and gRPC code for the qpumesh.v1 contract (do not edit)."""
