"""Request/reply operations as data: a subject, a request type and a reply type.

The gateway and the owning service both encode and decode through the same ``Operation``,
so a request can only be sent in the shape the service reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from outpost_contracts import subjects
from outpost_contracts.envelope import RequestContext, RpcReply, RpcRequest
from outpost_contracts.errors import OutpostError

Req = TypeVar("Req")
Rep = TypeVar("Rep")

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Operation(Generic[Req, Rep]):
    service: str
    name: str
    request: type[Req]
    reply: type[Rep]
    _decoders: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    subject: str = field(init=False, compare=False, repr=False)  # built (and checked) once

    def __post_init__(self) -> None:
        object.__setattr__(self, "subject", subjects.rpc(self.service, self.name))

    def _decoder(self, kind: str) -> Any:
        dec = self._decoders.get(kind)
        if dec is None:
            target = RpcRequest[self.request] if kind == "req" else RpcReply[self.reply]  # type: ignore[name-defined]
            dec = msgspec.json.Decoder(target)
            self._decoders[kind] = dec
        return dec

    def encode_request(self, ctx: RequestContext, body: Req) -> bytes:
        return _encoder.encode(RpcRequest(ctx=ctx, body=body))

    def decode_request(self, data: bytes) -> RpcRequest[Req]:
        return self._decoder("req").decode(data)  # type: ignore[no-any-return]

    def encode_result(self, result: Rep) -> bytes:
        return _encoder.encode(RpcReply(result=result))

    def encode_error(self, error: OutpostError) -> bytes:
        return _encoder.encode(RpcReply[Any](error=error.to_contract()))

    def decode_reply(self, data: bytes) -> Rep:
        """The result, or the service's error raised as an ``OutpostError``."""
        reply: RpcReply[Rep] = self._decoder("rep").decode(data)
        if reply.error is not None:
            raise OutpostError.from_contract(reply.error)
        return reply.result  # type: ignore[return-value]
