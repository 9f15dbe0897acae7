"""Benchmarks of the lab's targets against reference implementations (`python -m benchmarks`)."""
