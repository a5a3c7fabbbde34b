"""Stages of the teaching kit; each builds on multi_agent_system.py at the repo root."""
