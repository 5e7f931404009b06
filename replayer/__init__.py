"""replayer: replay recorded LLM production traces against OpenAI-compatible servers and measure what users feel."""

__version__ = "0.1.0"
