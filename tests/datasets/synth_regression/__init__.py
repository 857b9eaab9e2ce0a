"""A regression dataset (synthetic houses): a data scientist's package for the platform tests."""
