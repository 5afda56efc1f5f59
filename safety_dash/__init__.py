"""safety-dash: safety signal monitoring for clinical trials."""

__version__ = "0.1.0"
