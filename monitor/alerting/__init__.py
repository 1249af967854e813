"""Alert routing and silencing: pure decisions over matches (no delivery, no I/O)."""
