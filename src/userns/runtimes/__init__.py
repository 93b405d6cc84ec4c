"""What Docker, Podman, ``unshare`` and Incus build from the same subuid/subgid files.

Each runtime reads /etc/subuid and /etc/subgid with its own parser and turns the lines
into maps its own way. This module rebuilds each one from its source (versions named in
``docs/differences.md``), over the texts of the files (or :class:`~userns.subid.SubidFile`
values) and the passwd/group data (:class:`~userns.subid.Accounts`); nothing here reads
the running host.

- :func:`docker_remap` — ``dockerd --userns-remap``: every line of the user (by name or
  decimal uid), concatenated into container IDs 0, 1, … in FILE order; subgid looked up
  by the USER; no map for ``root``; data root ``<root>/<uid>.<gid>``.
- :func:`podman_maps` — Podman/containers-storage: the ranges sorted by host start;
  rootless, the intermediate namespace ``0 → own uid`` then the ranges from 1.
  :func:`podman_rootless_map` resolves a rootless ``--uidmap``;
  :func:`podman_auto` / :func:`podman_auto_size` are ``--userns=auto``.
- :func:`unshare_maps` — util-linux 2.38 ``unshare --map-auto`` (the FIRST matching line
  only) and its ``--map-root-user`` / ``--map-current-user`` / ``--map-user`` variants.
- :func:`incus_maps` — Incus: root's ranges of at least 65536 IDs, ``raw.idmap`` holes
  applied with Incus's own ``AddSafe``.
- :func:`compare_runtimes` — the maps of all of them for one user, and why they differ.

One module per runtime (``docker``, ``podman``, ``unshare``, ``incus``) and ``compare``,
as :mod:`userns.formats` has one per format; this package re-exports their public names.

>>> from userns.subid import Accounts
>>> subuid = "jonas:100000:1000\\njonas:1000:1\\n"
>>> acc = Accounts.from_pairs([("jonas", 1000)], [("jonas", 1000)])
>>> print(docker_remap(subuid, subuid, "jonas", accounts=acc).uid)
0 100000 1000
1000 1000 1
>>> print(podman_maps(subuid, subuid, "jonas", accounts=acc, rootless=False).uid)
0 1000 1
1 100000 1000
>>> podman_maps(subuid, subuid, "jonas", accounts=acc).error.message
'invalid configuration: the specified mapping 1000:1 in "/etc/subuid" includes the user UID'
"""

from __future__ import annotations

from ._base import (
    AUTO_USERNS_MAX_SIZE,
    AUTO_USERNS_MIN_SIZE,
    Note,
    RuntimeConfigError,
    RuntimeMaps,
)
from .compare import Comparison, Difference, compare_runtimes
from .daemon import (
    DaemonConfig,
    Setting,
    check_data_root,
    detect_docker_version,
    read_daemon_config,
)
from .docker import DOCKER_VERSIONS, DockerRules, docker_remap, docker_remapped_root, docker_rules
from .explain import Explanation, HostView, Translation, explain_docker
from .incus import incus_maps
from .podman import (
    podman_auto,
    podman_auto_available,
    podman_auto_size,
    podman_maps,
    podman_rootless_map,
)
from .unshare import unshare_maps

__all__ = [
    "AUTO_USERNS_MAX_SIZE",
    "AUTO_USERNS_MIN_SIZE",
    "DOCKER_VERSIONS",
    "Comparison",
    "DaemonConfig",
    "Difference",
    "DockerRules",
    "Explanation",
    "HostView",
    "Note",
    "RuntimeConfigError",
    "RuntimeMaps",
    "Setting",
    "Translation",
    "check_data_root",
    "compare_runtimes",
    "detect_docker_version",
    "docker_remap",
    "docker_remapped_root",
    "docker_rules",
    "explain_docker",
    "incus_maps",
    "podman_auto",
    "podman_auto_available",
    "podman_auto_size",
    "podman_maps",
    "podman_rootless_map",
    "read_daemon_config",
    "unshare_maps",
]

