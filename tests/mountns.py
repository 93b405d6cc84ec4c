"""Run a test body in a forked child with its own private mount namespace.

Nothing the body mounts is seen by the host or by other tests; its failure (or skip)
comes back to the parent as text. Shared by the mount and access tests.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import subprocess
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

CLONE_NEWNS = 0x00020000
MS_REC, MS_PRIVATE = 0x4000, 0x40000
F = TypeVar("F", bound=Callable[..., Any])

_libc = ctypes.CDLL(None, use_errno=True)


def ext4_image(tmp_path: Path) -> tuple[Path, Path]:
    """A 32 MiB ext4 image (256-byte inodes, room for extended attributes) at
    ``tmp_path/fs.img``, mounted on ``tmp_path/mnt`` through a loop device; skips when
    e2fsprogs is missing. Call it in a private mount namespace (:func:`private_mountns`)."""
    for tool in ("mkfs.ext4", "debugfs"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian package e2fsprogs)")
    img, mnt = tmp_path / "fs.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(img, "wb") as f:
        f.truncate(32 << 20)
    for args in (["mkfs.ext4", "-q", "-F", "-I", "256", str(img)],
                 ["mount", "-o", "loop", str(img), str(mnt)]):
        subprocess.run(args, capture_output=True, text=True, check=True)
    return img, mnt


def kernel_at_least(major: int, minor: int) -> bool:
    """Whether the running kernel's release is at least ``major.minor``."""
    nums = os.uname().release.split("-")[0].split(".")
    return (int(nums[0]), int(nums[1])) >= (major, minor)


def private_mountns(setup: Callable[[], None] | None = None) -> Callable[[F], F]:
    """A decorator: run the test in a forked child after ``unshare(CLONE_NEWNS)`` and
    ``mount --make-rprivate /``, then ``setup()`` (in the child) if given."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> None:
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                msg = b""
                try:
                    os.close(r)
                    if _libc.unshare(CLONE_NEWNS) != 0:
                        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
                    if _libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
                        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
                    if setup is not None:
                        setup()
                    fn(*args, **kwargs)
                except pytest.skip.Exception as e:
                    msg = b"SKIP:" + str(e).encode()
                except BaseException:
                    msg = b"FAIL:" + traceback.format_exc().encode()
                finally:
                    with contextlib.suppress(OSError):
                        os.write(w, msg)
                    os._exit(0)
            os.close(w)
            chunks = []
            while chunk := os.read(r, 65536):
                chunks.append(chunk)
            os.close(r)
            _, status = os.waitpid(pid, 0)
            out = b"".join(chunks).decode(errors="replace")
            if out.startswith("SKIP:"):
                pytest.skip(out[5:])
            if out.startswith("FAIL:"):
                pytest.fail(out[5:], pytrace=False)
            assert os.waitstatus_to_exitcode(status) == 0

        return wrapper  # type: ignore[return-value]

    return decorate
