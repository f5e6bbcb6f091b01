"""Test doubles shared by the test modules (importable through pytest's ``pythonpath``)."""
