"""Logits control: CK-PLUG knowledge-reliance mixing (batched), as a transformers logits processor
and as a one-forward-pass two-branch decoder. Import the module you need (torch is loaded there)::

    from gatedrag.control.knowledge import knowledge_mix
    from gatedrag.control.processor import KnowledgeRelianceLogitsProcessor
    from gatedrag.control.joint import generate_with_control
"""
