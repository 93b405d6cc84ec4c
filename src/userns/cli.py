"""The ``userns`` command line (a first version: the seed example only)."""

from __future__ import annotations

import sys

from .formats.proc import format_proc
from .maps import IDMap, IDMapPair

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Show what Docker's ``userns-remap`` builds from ``dockremap:231072:65536``."""
    del argv
    m = IDMap.single(0, 231072, 65536)
    out = sys.stdout
    out.write("/etc/subuid: dockremap:231072:65536\n")
    out.write(f"uid_map: {format_proc(m)}")
    for c in (0, 33, 1000, 65534):
        out.write(f"container {c} -> host {m.to_host(c)}\n")
    out.write(f"host 0 (root) seen inside: {m.container_view(0)}\n")
    out.write(f"Docker data root: /var/lib/docker/{IDMapPair.both(m).root_dir_name}\n")
    return 0
