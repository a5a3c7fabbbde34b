"""Tests of agents as services: stages/variants/message_passing.py and machinery/bus.py, services.py."""
