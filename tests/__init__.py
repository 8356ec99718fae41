"""A package (as is each tier's folder): test files in two tiers may share a name
(unit/test_training.py, integration/test_training.py), and all import ``tests.helpers``."""
