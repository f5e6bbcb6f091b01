"""Evaluation: dataset loaders, metrics and reports, installed as ``gatedrag.evals``.

Uses only gatedrag's public API. Data is read from a path the user gives (default
``../shared/data``) and never copied into the repository.
"""
