"""Client telemetry (KIP-714): client-metrics subscriptions, the client
instances that fetch them and push metrics, and the pushed metrics kept for
the broker's Prometheus endpoint (``manager.py``; OTLP decoding in ``otlp.py``)."""

from .manager import TelemetryManager

__all__ = ["TelemetryManager"]
