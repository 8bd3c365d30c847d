"""Test-only: switch back on, one at a time, the bugs the exactly-once work fixed.

The fault explorer (``fleetlog sim explore``) must catch each of them; its tests prove
it by adding names to ``ON`` in the process they explore in. ``ON`` is not an
environment variable or an option on purpose: nothing outside the Python process (no
operator, no shell, no config file) can switch a bug on; only test code that imports
this module can, and fleetlog itself never does. Each name marks one place:

- ``fencing``: a runner's appends carry no fence, so a paused holder's writes land
  (``writer``);
- ``identity``: an owner is "dead" when its host name is ours and its pid is not running
  here, the host-name identity of old (``owners``);
- ``in_doubt``: a step whose connection dropped after the command ran counts as a
  plain failure, and is retried (``steps``);
- ``fanout``: resuming a fan-out plan finishes only the members already started
  (``ops.plans``).
"""

from __future__ import annotations

BUGS = ("fencing", "identity", "in_doubt", "fanout")

#: The bugs switched back on; empty in every release path.
ON: set[str] = set()


def reintroduced(bug: str) -> bool:
    """Whether the test hook ``bug`` is on (read at each call, so a test can set it)."""
    return bug in ON
