"""Stage 3, prompts: token-exact prompt synthesis, session histories and request bodies in each engine's dialect,
all built before t0.
"""
