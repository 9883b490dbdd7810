"""privacy-middleware: make a shop API keep the promises of its privacy policy."""

__version__ = "0.1.0"
__all__ = ["__version__"]
