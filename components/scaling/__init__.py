"""Autoscaling the vLLM servers with KEDA on the signals that predict LLM latency, with
cron-scheduled warm capacity."""
