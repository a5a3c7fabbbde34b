"""Variants of the chapter's loop: each swaps one piece and reuses every other."""
