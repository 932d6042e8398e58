"""Turning TensorFlow op errors into the sentence a user should see.

Example:
    >>> class Err(Exception): message = "Graph execution error:\\n\\nassertion failed: [context is empty]\\n\\t [[{{node A}}]]"
    >>> error_reason(Err())
    'context is empty'
"""
from __future__ import annotations

import re

# Graph mode: "assertion failed: [<message>]"; eager mode: "Summarized data: b'<message>'".
_ASSERT_MESSAGE = re.compile(r"assertion failed: \[(.*?)\]\s*(?:\n|$)|Summarized data: b'(.*?)'")


def error_reason(err: Exception) -> str:
    """The message given to a failed ``tf.debugging.Assert``, else the first non-empty line."""
    text = getattr(err, "message", None) or str(err)
    found = _ASSERT_MESSAGE.search(text)
    if found:
        return (found.group(1) or found.group(2))[:500]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(err).__name__)[:500]
