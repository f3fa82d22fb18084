"""Adapters to runtimes and vendor tools."""
