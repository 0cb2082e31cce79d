"""The platform adapters: job sources, object storage and event publishers."""
