"""Benchmarks against the local lab. Their results and the commands that produced them are in docs/benchmarks.md."""
