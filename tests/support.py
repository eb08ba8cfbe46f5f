"""Names and test data that the test tiers share."""

from __future__ import annotations

from typing import Any

#: The extra cluster-admin of the ``apiserver`` tier fixture: give the process whose requests a
#: test counts its kubeconfig (``apiserver.kubeconfigs[AUDITED_USER]``), then filter the audit
#: log by this user name.
AUDITED_USER = "operator"


def as_dict(obj: Any) -> dict[str, Any]:
    """A lightkube object as a dict (a generic resource's to_dict is untyped)."""
    data: dict[str, Any] = obj.to_dict()
    return data
