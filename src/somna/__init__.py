"""somna: automatic sleep staging from polysomnography."""

__version__ = "0.1.0"
