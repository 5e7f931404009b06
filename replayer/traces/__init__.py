"""Stage 1, traces: read recorded traces (BurstGPT, Azure, Mooncake, CSV/JSONL) or generate synthetic ones into a
`Trace` of numpy columns, plus public datasets, fits, statistics and plots.
"""
