"""Watching the servers and their GPUs: the Observability component (Prometheus, Grafana, the DCGM
exporter, scraping), its alert rules and Grafana dashboards (``dashboards/``), and every metric
name the stack uses."""
