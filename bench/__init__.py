"""Benchmarks: ``python -m bench`` runs the loopback benchmark (bench/run.py); live_tasks.py needs a real model."""
