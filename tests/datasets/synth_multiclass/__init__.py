"""A multi-class dataset (synthetic customers, 3 segments): a data scientist's package for the platform tests."""
