"""The ``ssh`` backend: commands run over SSH (paramiko) on the hosts named by steps.

Imported only when ``--backend ssh`` is chosen: paramiko costs ~140 ms to import.
"""

from fleetlog.engine.backends.ssh.backend import SSHBackend
from fleetlog.engine.backends.ssh.hostkeys import HostKeyChanged, UnknownHostKey, fingerprint

__all__ = ["HostKeyChanged", "SSHBackend", "UnknownHostKey", "fingerprint"]
