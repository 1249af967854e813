"""Matching: link items to tracked claims and decide how each item relates to its claim."""
