"""Experiments: many runs of one workload at other loads or seeds, to answer a question (how much
of this traffic can the server take, where does latency fall off, is that difference noise).
Each run keeps its own directory; an experiment adds its JSON and report beside them, and every
verdict in them is recomputed from the runs' records."""
