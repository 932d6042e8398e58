"""Process limits that local Beam runs need, checked before they start.

Beam's local runners (the DirectRunner in multi-processing mode, a local Dask cluster) start their
workers over pipes and sockets. A worker that cannot get its descriptors dies in a thread of the
job service and the job waits for it for ever: ``rw-tf refine`` under ``ulimit -n 20`` printed
"... running" for ten minutes and never ended. ``ensure_open_files`` raises the soft limit on open
files up to ``MIN_OPEN_FILES`` where the hard limit allows (no further: ``select()`` users rely on
the usual 1,024) and otherwise refuses the run with the limit and the fix.

Example:
    >>> ensure_open_files("a local Beam run") >= MIN_OPEN_FILES    # the usual limits: nothing to do
    True
"""
from __future__ import annotations

import resource

from rw_tf.errors import UserError

# Two local workers need about 30; far below every system default (1,024 or more).
MIN_OPEN_FILES = 256


def ensure_open_files(purpose: str, minimum: int = MIN_OPEN_FILES) -> int:
    """Makes sure this process may open ``minimum`` files, raising its soft limit if it must;
    returns the soft limit. Raises ``UserError`` when the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= minimum:
        return soft
    if hard != resource.RLIM_INFINITY and hard < minimum:
        raise UserError(f"{purpose} needs to open at least {minimum} files; this process may open {hard}",
                        hint=f"raise the limit (`ulimit -n {minimum}` or more) before running it")
    resource.setrlimit(resource.RLIMIT_NOFILE, (minimum, hard))
    return minimum
