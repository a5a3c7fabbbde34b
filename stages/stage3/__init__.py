"""Stage 3: handoffs between agents, a run context, and an adversarial audit loop."""
