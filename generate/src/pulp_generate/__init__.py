"""Generators of pulp-operator's install artefacts: every file they write is derived from the
operator's own sources (models, CRDs, RBAC rules, metrics, condition reasons) and checked in; a
test fails when a checked-in file differs from what they produce (`make generate` rewrites them).
"""
