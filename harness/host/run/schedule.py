"""Test order and pytest-xdist scheduling that keep each kernel's tests together
and each kernel on as few workers as possible.

Booting is the dominant cost, so tests are grouped by the kernel in their
id and each group goes to one worker. When there are more workers than
kernels, a kernel's tests are grouped per module instead, so the spare
workers boot that kernel too and share its modules.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, TypeVar

from xdist.scheduler import LoadScopeScheduling

T = TypeVar("T")


def group_by_kernel(items: list[T], kernel: Callable[[T], Optional[str]],
                    kernel_ids: Sequence[str]) -> None:
    """Reorder items in place so that each kernel's come together, in kernel_ids'
    order, in the places VM items had; other items keep theirs.

    pytest groups by the session-scoped kernel parameter only as far as its
    other parameters allow: test_x[a-5.10], test_x[a-6.12], test_x[b-5.10], ...
    would boot each kernel again and again once the pool is bounded.
    """
    rank = {kid: i for i, kid in enumerate(kernel_ids)}
    places = [i for i, item in enumerate(items) if kernel(item) in rank]
    ordered = sorted((items[i] for i in places), key=lambda item: rank[kernel(item)])
    for place, item in zip(places, ordered):
        items[place] = item


def kernel_of(nodeid: str, kernel_ids: Sequence[str]) -> Optional[str]:
    """The kernel id among the parameters of nodeid, if any."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    params = nodeid[nodeid.index("[") + 1:-1]
    for kid in sorted(kernel_ids, key=len, reverse=True):
        if params == kid or params.endswith("-" + kid):
            return kid
    return None


def scope_of(nodeid: str, kernel_ids: Sequence[str], workers: int) -> str:
    kid = kernel_of(nodeid, kernel_ids)
    if kid is None:
        return nodeid
    if workers > len(kernel_ids):
        return f"{kid}::{nodeid.split('::', 1)[0]}"
    return kid


class KernelScheduling(LoadScopeScheduling):
    def __init__(self, config, log=None, kernel_ids: Callable[[], Sequence[str]] = list):
        """kernel_ids: the run's kernel ids, asked for when scheduling, since
        they are known only once a worker has collected VM tests."""
        super().__init__(config, log)
        self._kernel_ids = kernel_ids
        self.workers = len(config.getoption("tx") or ()) or 1

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid, self._kernel_ids(), self.workers)

    def remove_node(self, node):
        """As LoadScopeScheduling, but never run the test that crashed a worker again.

        LoadScopeScheduling puts the crashed worker's whole unit back in the
        queue, crashed test included, so a test that kills its worker would
        do so on every worker in turn.
        """
        crashitem = super().remove_node(node)
        if crashitem is not None:
            for scope, unit in list(self.workqueue.items()):
                if crashitem in unit:
                    unit[crashitem] = True
                    if all(unit.values()):
                        del self.workqueue[scope]
        return crashitem
