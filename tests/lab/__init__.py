"""The SSH lab: real OpenSSH sshd processes on loopback serving the simulated datacenter's
fake tools, for the ssh backend's tests and benchmark (see ``tests/lab/lab.py``)."""
