"""Registering a servicer whose requests are decoded inside the handler, not by gRPC.

The generated ``add_*Servicer_to_server`` functions give gRPC the messages' plain
``FromString`` as request deserializers; bytes that are not a valid message make it raise,
and gRPC ends the call with INTERNAL ("Exception deserializing request!"), the code
reserved for server bugs. ``add_servicer`` registers the same methods -- names, request
and response types and streaming kinds all read from the service's descriptor, so no
method path is written by hand -- with a deserializer that never raises: what it cannot
decode becomes an ``Undecodable`` that the handler answers with INVALID_ARGUMENT (naming
the message type). Interceptors still see messages (or an ``Undecodable``).

A ``decode`` hook may also refuse a message before parsing it (e.g. a node bounding the
number of fields it will parse while holding the GIL) by raising ``RequestRefused``.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import grpc.aio
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from qpumesh.wire.status import abort

__all__ = ["Decoder", "RequestRefused", "Undecodable", "add_servicer", "decode_message"]


class RequestRefused(Exception):  # noqa: N818 (reads as what happened)
    """A decoder refuses a request; ``code`` and the message are sent to the caller."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


Decoder = Callable[[bytes, type[Message]], Message]
"""Turns a request's raw bytes into its message; raises ``DecodeError`` or ``RequestRefused``."""


def decode_message(raw: bytes, message_type: type[Message]) -> Message:
    """Parse ``raw`` as a ``message_type`` (the default decoder)."""
    return message_type.FromString(raw)


class Undecodable:
    """Stands in for a request its decoder refused; the handler answers ``code`` and ``message``.

    gRPC hands the result of the request deserializer to interceptors and then to the
    handler; a deserializer that raised would end the call with INTERNAL before either
    sees it. So the deserializer returns this instead, and the handler aborts with it.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        self.message = message


def _deserializer(method: MethodDescriptor, decode: Decoder) -> Callable[[bytes], Message | Undecodable]:
    message_type = message_factory.GetMessageClass(method.input_type)

    def deserialize(raw: bytes) -> Message | Undecodable:
        try:
            return decode(raw, message_type)
        except RequestRefused as refused:
            return Undecodable(refused.code, str(refused))
        except (DecodeError, ValueError, RecursionError):
            return Undecodable(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request is not a valid {method.input_type.full_name} protobuf message "
                f"({len(raw)} bytes); send a message built from the qpumesh.v1 protos",
            )

    return deserialize


def _decoded(request: Message | Undecodable, context: grpc.ServicerContext) -> Message:
    if isinstance(request, Undecodable):
        abort(context, request.code, request.message)
    return request


def _handler(servicer: Any, method: MethodDescriptor, decode: Decoder) -> grpc.RpcMethodHandler[Any, Any]:
    behaviour = getattr(servicer, method.name)
    deserialize = _deserializer(method, decode)
    serialize = message_factory.GetMessageClass(method.output_type).SerializeToString
    if method.client_streaming:
        raise ValueError(f"{method.full_name}: client-streaming methods are not supported")
    if inspect.isasyncgenfunction(behaviour) or inspect.iscoroutinefunction(behaviour):
        return _async_handler(behaviour, method, deserialize, serialize)
    if method.server_streaming:

        def stream(request: Message | Undecodable, context: grpc.ServicerContext) -> Iterator[Message]:
            yield from behaviour(_decoded(request, context), context)

        return grpc.unary_stream_rpc_method_handler(
            stream, request_deserializer=deserialize, response_serializer=serialize
        )

    def unary(request: Message | Undecodable, context: grpc.ServicerContext) -> Message:
        return behaviour(_decoded(request, context), context)  # type: ignore[no-any-return]

    return grpc.unary_unary_rpc_method_handler(
        unary, request_deserializer=deserialize, response_serializer=serialize
    )


def _async_handler(
    behaviour: Any, method: MethodDescriptor, deserialize: Any, serialize: Any
) -> grpc.RpcMethodHandler[Any, Any]:
    """Return the handler of an asyncio servicer's method (``async def``, or an async generator)."""

    async def decoded(request: Message | Undecodable, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        if isinstance(request, Undecodable):
            await context.abort(request.code, request.message)
        assert isinstance(request, Message)
        return request

    if method.server_streaming:

        async def stream(request: Message | Undecodable, context: Any) -> AsyncIterator[Message]:
            async for reply in behaviour(await decoded(request, context), context):
                yield reply

        return grpc.unary_stream_rpc_method_handler(
            stream, request_deserializer=deserialize, response_serializer=serialize
        )

    async def unary(request: Message | Undecodable, context: Any) -> Message:
        return await behaviour(await decoded(request, context), context)  # type: ignore[no-any-return]

    return grpc.unary_unary_rpc_method_handler(
        unary, request_deserializer=deserialize, response_serializer=serialize
    )


def add_servicer(
    server: grpc.Server | grpc.aio.Server,
    servicer: Any,
    service: ServiceDescriptor,
    decode: Decoder = decode_message,
) -> None:
    """Register every method of ``service`` on ``server``, served by ``servicer``'s methods.

    Args:
        server: the server, before it starts (an asyncio server needs an asyncio servicer).
        servicer: an object with one method per RPC (``Name(request, context)``), e.g. a
            subclass of the generated ``*Servicer``; ``async def`` methods (and async
            generators for server streaming) are served as asyncio handlers.
        service: the service's descriptor, e.g. ``pb.DESCRIPTOR.services_by_name["QPUNode"]``.
        decode: turns raw request bytes into the request message.
    """
    handlers = {method.name: _handler(servicer, method, decode) for method in service.methods}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)  # type: ignore[union-attr]
