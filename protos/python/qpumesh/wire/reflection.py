"""Server reflection in both versions tools speak: ``grpc.reflection.v1`` and ``v1alpha``.

``grpcio-reflection`` serves only ``grpc.reflection.v1alpha.ServerReflection``; grpcurl
falls back to it, but newer tools (and grpc-js's, Postman's) ask for
``grpc.reflection.v1.ServerReflection`` and fail without it. The v1 protocol is the
v1alpha one under a new package name -- same messages, same field numbers -- so the one
servicer answers both: its handler is registered a second time under the v1 method name,
and a copy of the v1alpha file descriptor renamed to ``grpc/reflection/v1/reflection.proto``
is added to the descriptor pool, so that the v1 service can itself be described.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import grpc.aio
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import _async as aio_reflection
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha

V1ALPHA_SERVICE = reflection.SERVICE_NAME
"""``grpc.reflection.v1alpha.ServerReflection``."""
V1_SERVICE = "grpc.reflection.v1.ServerReflection"
V1_FILE = "grpc/reflection/v1/reflection.proto"
_V1ALPHA_PACKAGE = "grpc.reflection.v1alpha"
_V1_PACKAGE = "grpc.reflection.v1"


def _register_v1_descriptor(pool: descriptor_pool.DescriptorPool) -> None:
    """Add the v1 reflection file (the v1alpha file, renamed) to ``pool`` once."""
    try:
        pool.FindFileByName(V1_FILE)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    v1alpha.DESCRIPTOR.CopyToProto(proto)
    proto.name = V1_FILE
    proto.package = _V1_PACKAGE
    old, new = f".{_V1ALPHA_PACKAGE}.", f".{_V1_PACKAGE}."
    for message in proto.message_type:
        for field in message.field:
            if field.type_name:
                field.type_name = field.type_name.replace(old, new)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    proto.options.Clear()  # the v1alpha file's Java/C# package options name v1alpha
    pool.Add(proto)


def enable_reflection(service_names: Sequence[str], server: grpc.Server | grpc.aio.Server) -> None:
    """Serve reflection v1 and v1alpha on ``server`` (before it starts), listing ``service_names``.

    Both reflection services are added to the listed names. An asyncio server gets the
    asyncio servicer (its handlers must not block the event loop).
    """
    _register_v1_descriptor(descriptor_pool.Default())
    names = (*service_names, V1ALPHA_SERVICE, V1_SERVICE)
    servicer: reflection.ReflectionServicer | aio_reflection.ReflectionServicer
    if isinstance(server, grpc.aio.Server):
        servicer = aio_reflection.ReflectionServicer(names)
    else:
        servicer = reflection.ReflectionServicer(names)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=v1alpha.ServerReflectionRequest.FromString,
        response_serializer=v1alpha.ServerReflectionResponse.SerializeToString,
    )
    for service in (V1ALPHA_SERVICE, V1_SERVICE):
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, {"ServerReflectionInfo": handler}),)
        )
