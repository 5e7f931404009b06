"""Stage 5, run: grouped run configuration, target discovery, preflight, one-shard replay and the three shard
runners (local, workers, Ray), with the live view, server metrics and scenarios.
"""
