"""Errors of the local server, each carrying the gRPC status code TF Serving uses for it."""
from __future__ import annotations

import functools

import grpc

HTTP_STATUS = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.INVALID_ARGUMENT: 400,
               grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
               grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.INTERNAL: 500}


# Messages quote what a request named (a model, a signature, an input key); gRPC sends the message
# in a trailer, percent-encoding every byte outside printable ASCII, and clients refuse trailers
# over 8 KiB, at random, and always over 16 KiB ("received metadata size exceeds soft/hard limit"),
# which replaces the status a client should see. Messages are cut to this many bytes as sent.
MAX_MESSAGE_WIRE_BYTES = 6000


def _wire_bytes(char: str) -> int:
    return 1 if " " <= char <= "~" and char != "%" else 3 * len(char.encode("utf-8", "surrogatepass"))


def _fit(text: str, budget: int, from_end: bool = False) -> str:
    kept, used = [], 0
    for char in (reversed(text) if from_end else text):
        used += _wire_bytes(char)
        if used > budget:
            break
        kept.append(char)
    return "".join(reversed(kept) if from_end else kept)


def bounded_message(message: str) -> str:
    """``message``, cut in the middle to at most ``MAX_MESSAGE_WIRE_BYTES`` as gRPC sends it."""
    if len(_fit(message[:MAX_MESSAGE_WIRE_BYTES + 1], MAX_MESSAGE_WIRE_BYTES)) == len(message):
        return message
    half = (MAX_MESSAGE_WIRE_BYTES - 100) // 2
    head, tail = _fit(message[:half], half), _fit(message[-half:], half, from_end=True)
    return f"{head}... ({len(message) - len(head) - len(tail):,} characters cut) ...{tail}"


class ServingError(Exception):
    """A request failure with its status code (``grpc.StatusCode``); the message is bounded."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        message = bounded_message(message)
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


# ServingError(code, message) for the codes the server answers with.
not_found = functools.partial(ServingError, grpc.StatusCode.NOT_FOUND)
invalid_argument = functools.partial(ServingError, grpc.StatusCode.INVALID_ARGUMENT)
resource_exhausted = functools.partial(ServingError, grpc.StatusCode.RESOURCE_EXHAUSTED)
unavailable = functools.partial(ServingError, grpc.StatusCode.UNAVAILABLE)
