"""How bad a finding is: one ordered scale for lint, the runtimes, kubelet and the CLI.

>>> Severity.of("security") > Severity.WARNING
True
>>> str(Severity.ERROR), max(Severity.INFO, Severity.of("warning"))
('error', <Severity.WARNING: 1>)
"""

from __future__ import annotations

import enum

__all__ = ["Severity"]


class Severity(enum.IntEnum):
    """How bad a finding is; ordered, so ``max()`` gives the worst.

    ``str()`` gives the lower-case name used in reports, JSON and ``--fail-on``.
    """

    INFO = 0
    WARNING = 1
    ERROR = 2
    SECURITY = 3

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def of(cls, value: Severity | str | int) -> Severity:
        """A severity from itself, its name (``"warning"``, any case) or its number."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                names = ", ".join(str(s) for s in cls)
                raise ValueError(f"not a severity: {value!r} (one of {names})") from None
        return cls(value)
