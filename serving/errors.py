"""Errors of the local server, each carrying the gRPC status code TF Serving uses for it."""
from __future__ import annotations

import grpc

HTTP_STATUS = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.INVALID_ARGUMENT: 400,
               grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
               grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.INTERNAL: 500}


# Messages quote what a request named (a model, a signature, an input key); gRPC sends the message
# in a trailer and clients refuse trailers over 16 KiB ("received metadata size exceeds hard
# limit"), which would replace the status a client should see.
MAX_MESSAGE_CHARS = 2000


def bounded_message(message: str) -> str:
    """``message``, cut in the middle to at most about ``MAX_MESSAGE_CHARS`` characters."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    half = MAX_MESSAGE_CHARS // 2
    return f"{message[:half]}... ({len(message) - 2 * half:,} characters cut) ...{message[-half:]}"


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


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def invalid_argument(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def resource_exhausted(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def unavailable(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.UNAVAILABLE, message)
