"""Observability: structured logs, metrics, tracing, profiling and cost."""
