"""Optional Prometheus endpoint (``[metrics] enabled = true``), bound to 127.0.0.1 by default,
with the daemon's health beside it for probes (Kubernetes, load balancers):

- ``/metrics``: Prometheus text. Counters are read from the running pipeline, sources and sinks
  at scrape time, so the hot path only keeps plain integers; classification latency is a histogram.
- ``/healthz``: 200 while the watchdog would pet systemd's watchdog (the classifier loop makes
  progress and some source is live, or the member has no sources), else 503; the body is the
  daemon's status line.
- ``/readyz``: 200 once the daemon is ready (audio arrived, or a source waits to retry), else 503.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator

from genrecast.daemon.events import STATES

log = logging.getLogger(__name__)

LATENCY_BUCKETS_SECONDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


class PipelineCollector:
    """Exposes the pipeline's, the sources' and the sinks' counters."""

    def __init__(self, pipeline, publisher) -> None:
        self.pipeline, self.publisher = pipeline, publisher

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        p = self.pipeline
        yield CounterMetricFamily("genrecast_windows_classified", "Windows run through the models: the music detector, and the genre model where it hears music.",
                                  value=p.maker.classified)
        yield CounterMetricFamily("genrecast_windows_dropped", "Windows dropped because classification fell behind.", value=p.dropped_windows)
        events = CounterMetricFamily("genrecast_events", "Events published, by state and genre.", labels=["state", "genre"])
        for (state, genre), count in sorted(p.event_counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            events.add_metric([state, genre or ""], count)
        yield events
        by_state = CounterMetricFamily("genrecast_windows_by_state",
                                       "Windows by state: music, not_music (music detector), silence, uncertain.", labels=["state"])
        for state in STATES:
            by_state.add_metric([state], sum(n for (s, _), n in p.event_counts.items() if s == state))
        yield by_state
        for attr, metric, help_text in (
            ("restarts", "genrecast_source_restarts", "Source reconnects and restarts."),
            ("overflows", "genrecast_source_overflows", "Input overflows reported by PortAudio (microphone sources)."),
            ("dropped_blocks", "genrecast_source_dropped_blocks",
             "Audio blocks a microphone source dropped because delivery fell behind."),
        ):
            family = CounterMetricFamily(metric, help_text, labels=["source"])
            for source in p.sources:
                family.add_metric([source.name], getattr(source, attr, 0))
            yield family
        stats = self.publisher.stats() if hasattr(self.publisher, "stats") else {}
        for name, help_text, kind in (
            ("errors", "Errors raised by a sink.", CounterMetricFamily),
            ("dropped", "Events a sink dropped because its queue was full.", CounterMetricFamily),
            ("queue_depth", "Events waiting in a sink's queue.", GaugeMetricFamily),
            ("delivered", "Events a sink handled.", CounterMetricFamily),
        ):
            family = kind(f"genrecast_sink_{name}", help_text, labels=["sink"])
            for sink, values in sorted(stats.items()):
                if name in values:
                    family.add_metric([sink], values[name])
            yield family
        mqtt = stats.get("mqtt", {})
        if "connected" in mqtt:
            yield GaugeMetricFamily("genrecast_mqtt_connected", "1 while connected to the broker.", value=int(bool(mqtt["connected"])))
            yield CounterMetricFamily("genrecast_mqtt_reconnects", "Connections to the broker after the first.", value=mqtt.get("reconnects", 0))
            yield CounterMetricFamily("genrecast_mqtt_connect_attempts", "Attempts to connect to the broker, failed ones included.",
                                      value=mqtt.get("connect_attempts", 0))


def health_app(metrics_app, health):
    """A WSGI app: ``/healthz`` and ``/readyz`` from ``health`` (an object with ``healthy()``,
    ``ready`` and ``status()``, the service's Watchdog), every other path to ``metrics_app``."""

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path not in ("/healthz", "/readyz") or health is None:
            return metrics_app(environ, start_response)
        ok = health.healthy() if path == "/healthz" else health.ready
        body = (("ok" if ok else "unhealthy" if path == "/healthz" else "not ready") + ": "
                + health.status().removeprefix("STATUS=") + "\n").encode()
        start_response("200 OK" if ok else "503 Service Unavailable",
                       [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def start_metrics_server(pipeline, publisher, host: str, port: int, health=None):
    """Serve /metrics, and /healthz and /readyz from ``health`` (see :func:`health_app`), on
    ``host:port`` in a thread; returns the server (``shutdown()`` to stop). Raises OSError
    when the address cannot be bound."""
    import socket
    import threading
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from prometheus_client import CollectorRegistry, Histogram, make_wsgi_app
    from prometheus_client.process_collector import ProcessCollector

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]  # "::" binds IPv6

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format, *args) -> None:  # no line per scrape or probe
            pass

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # resident memory, CPU, open fds
    registry.register(PipelineCollector(pipeline, publisher))
    latency = Histogram("genrecast_classification_seconds", "Time to run the genre model on one batch of windows (the music detector runs as each window is cut).",
                        buckets=LATENCY_BUCKETS_SECONDS, registry=registry)
    pipeline.maker.on_batch = lambda windows, seconds: latency.observe(seconds)
    server = make_server(host, port, health_app(make_wsgi_app(registry), health), Server, handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics on http://%s:%d/metrics, health on /healthz and /readyz", host, port)
    return server
