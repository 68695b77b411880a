"""Benchmarks: each measures one part of smsdrip against a baseline measured in the same run.

Run one with `python -m bench.<name> [--quick]`, or all with `bench/run [--quick]`. Results are
printed as tables (figure, baseline, ratio, target, met) and recorded in docs/benchmarks.md.
"""
