"""Expecting the kernel to say no: the errno and, where it gives one, its extack message."""
from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from .requirements import version_matches
from .target import parse_version

ANY = object()


class Refusal:
    """What refused() caught: the OSError, its errno and extack."""

    error: Optional[OSError] = None

    @property
    def extack(self) -> Optional[str]:
        return getattr(self.error, "extack", None)


def per_kernel(values: dict[str, Any], release: Optional[str] = None) -> Any:
    """The value whose version range ('<6.3', '>=6.3') holds for the running kernel."""
    version = parse_version(release or os.uname().release)
    for spec, value in values.items():
        if version_matches(version, spec):
            return value
    raise LookupError(f"nothing expected for kernel {release or os.uname().release}: "
                      f"add a version range covering it to {list(values)}")


def _name(code: int) -> str:
    return f"{errno.errorcode.get(code, code)} ({os.strerror(code)})"


@contextmanager
def refused(code: int, extack: object = ANY) -> Iterator[Refusal]:
    """The block must raise OSError with errno code and, unless left out, this extack
    (None: no extack at all; a dict: per kernel version, as per_kernel() picks).
    Anything else fails the test, saying what came instead.

        with refused(errno.EINVAL, "Program bound to different device"):
            prog.attach_xdp(other_port, mode="offload")
    """
    __tracebackhide__ = True
    if isinstance(extack, dict):
        extack = per_kernel(extack)
    caught = Refusal()
    want = _name(code) + ("" if extack is ANY else f" with extack {extack!r}")
    try:
        yield caught
    except OSError as e:
        caught.error = e
        got_extack = getattr(e, "extack", None)
        if e.errno != code or (extack is not ANY and got_extack != extack):
            raise AssertionError(f"expected {want}; got {_name(e.errno or 0)} with extack "
                                 f"{got_extack!r}: {e}") from e
    else:
        raise AssertionError(f"expected {want}; the call succeeded")
