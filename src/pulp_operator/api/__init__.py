"""The repo-manager.pulpproject.org/v1 API: typed models, validation rules and generated CRDs."""
