"""Benchmarks (``make bench``): each prints its figures next to a baseline measured in the same run.

The project keeps speed targets (docs/performance.md) out of the tests and here instead, so that a
figure is always read against something measured on the same machine at the
same moment, never against a number remembered from elsewhere.
"""
