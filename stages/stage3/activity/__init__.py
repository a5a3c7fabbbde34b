"""The stage 3 exercise: a security audit game with attacker, defender and judge, and its checks."""
