"""The built-in simulated OpenAI-compatible server: a pure continuous-batching step planner, its faults, and its
HTTP face.
"""
