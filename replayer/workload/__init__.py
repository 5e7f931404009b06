"""Stage 2, workload: shape a `Trace` into the `Workload` that is replayed (filters, windows, speedup or rate) and
deal it into shards.
"""
