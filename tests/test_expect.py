"""bpfvm.expect: refused() and per_kernel(), pure logic on the host."""
import errno

import pytest

from bpfvm.expect import per_kernel, refused


def _fail(code: int, extack=None):
    error = OSError(code, "refused")
    error.extack = extack
    raise error


def test_refused_takes_the_errno_and_extack_it_names():
    with refused(errno.EINVAL, "Program bound to different device") as caught:
        _fail(errno.EINVAL, "Program bound to different device")
    assert caught.extack == "Program bound to different device"
    with refused(errno.EBUSY):  # extack left out: any
        _fail(errno.EBUSY, "whatever")
    with refused(errno.EBUSY, None):
        _fail(errno.EBUSY)


@pytest.mark.parametrize("code,extack,said", [
    (errno.EBUSY, "Program bound to different device", "got EBUSY"),
    (errno.EINVAL, "another message", "with extack 'another message'"),
    (errno.EINVAL, None, "with extack None"),
])
def test_refused_says_what_came_instead(code, extack, said):
    with pytest.raises(AssertionError, match=said):
        with refused(errno.EINVAL, "Program bound to different device"):
            _fail(code, extack)


def test_refused_fails_when_nothing_is_refused():
    with pytest.raises(AssertionError, match="the call succeeded"):
        with refused(errno.EINVAL):
            pass


def test_per_kernel_picks_the_range_of_the_release():
    values = {"<6.3": "old", ">=6.3": "new"}
    assert per_kernel(values, "6.1.176-bpfvm-test") == "old"
    assert per_kernel(values, "7.2.13+deb14-amd64") == "new"
    with pytest.raises(LookupError, match="add a version range covering it"):
        per_kernel({">=6.3": "new"}, "5.10.0-32-amd64")
