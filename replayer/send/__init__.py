"""Stage 4, send: the open-loop dispatcher, the HTTP/1.1 client, SSE parsing and the event-loop settings: the only
code on the hot path.
"""
