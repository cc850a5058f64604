"""Keep raw frames out of core dumps: the unit process is marked non-dumpable and its core
size limit set to 0 (systemd's LimitCORE=0 does the same for the service)."""

from __future__ import annotations

import ctypes
import logging
import resource

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4


def no_core_dumps() -> bool:
    """Disable core dumps for this process; True when both settings took (Linux)."""
    ok = True
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (OSError, ValueError) as e:
        log.warning("could not set the core size limit to 0: %s", e)
        ok = False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")
    except (OSError, AttributeError) as e:
        log.warning("could not mark the process non-dumpable: %s", e)
        ok = False
    return ok
