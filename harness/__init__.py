"""isolharness: build, boot and test Linux CPU-isolation kernel series."""

__version__ = "0.1.0"
