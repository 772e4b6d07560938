"""Server reflection answers in both protocol versions on the node and the coordinator.

Tools that speak ``grpc.reflection.v1`` (grpcurl's newer builds, grpc-js's reflection
clients, Postman) and those that speak ``v1alpha`` must both be able to list the
services and fetch the descriptors of the qpumesh contract.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2 as messages

from qpumesh.wire.channels import open_channel

VERSIONS = ("grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")


def _ask(address: str, service: str, *requests: messages.ServerReflectionRequest) -> list[Any]:
    with open_channel(address) as channel:
        call = channel.stream_stream(
            f"/{service}/ServerReflectionInfo",
            request_serializer=messages.ServerReflectionRequest.SerializeToString,
            response_deserializer=messages.ServerReflectionResponse.FromString,
        )
        return list(call(iter(requests), timeout=10))


@pytest.mark.parametrize("service", VERSIONS)
def test_node_and_coordinator_answer_reflection(
    service: str, node_server: Any, coordinator_server: Any
) -> None:
    node, _ = node_server()
    coordinator, _ = coordinator_server(in_process=True)
    for address, contract in ((node, "qpumesh.v1.QPUNode"), (coordinator, "qpumesh.v1.Coordinator")):
        listed, described, itself = _ask(
            address,
            service,
            messages.ServerReflectionRequest(list_services=""),
            messages.ServerReflectionRequest(file_containing_symbol=contract),
            messages.ServerReflectionRequest(file_containing_symbol=service),
        )
        names = {entry.name for entry in listed.list_services_response.service}
        assert {contract, "grpc.health.v1.Health", *VERSIONS} <= names
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(blob)
            for blob in described.file_descriptor_response.file_descriptor_proto
        ]
        assert any(contract.rsplit(".", 1)[1] in [s.name for s in f.service] for f in files)
        reflection_files = [
            descriptor_pb2.FileDescriptorProto.FromString(blob)
            for blob in itself.file_descriptor_response.file_descriptor_proto
        ]
        assert [f.package for f in reflection_files] == [service.rsplit(".", 1)[0]]
