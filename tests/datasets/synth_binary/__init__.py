"""A binary classification dataset (synthetic loans): a data scientist's package for the platform tests."""
