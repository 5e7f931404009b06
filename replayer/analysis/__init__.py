"""Stage 6, analysis: records to summary (the metric definitions), SLOs, comparisons, time series and the text,
Markdown, JSON and HTML renderers. Pure functions of record files.
"""
