"""Kubernetes operator for Pulp 3 (repo-manager.pulpproject.org/v1)."""

__version__ = "0.1.0"
