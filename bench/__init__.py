"""Throughput benchmarks over the real feed documents in ``../shared/feeds/bench`` (not tests)."""
