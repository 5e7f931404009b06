"""The client's own benchmark: a ladder of loads against the simulator, compared with a minimal raw-socket client.
"""
