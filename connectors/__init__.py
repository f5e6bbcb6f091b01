"""Integrations with other systems, installed as ``gatedrag.connectors``.

This package holds adapters that connect gatedrag to other frameworks and servers (LangChain,
OpenAI-compatible model servers, external search stores). It depends on the core package,
never the other way round.
"""
