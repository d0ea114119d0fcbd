"""voicebot: a real-time AI voice-bot server on Trio."""

__version__ = "0.1.0"
