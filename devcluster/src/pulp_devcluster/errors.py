"""Errors of the local cluster tooling."""

from __future__ import annotations


class DevClusterError(RuntimeError):
    """The local control plane could not be started or stopped."""


class MissingBinaryError(DevClusterError):
    """A binary of the local control plane is not built; the message says which and where."""
