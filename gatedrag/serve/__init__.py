"""The OpenAI-compatible server (``gatedrag serve``, ``pip install 'gatedrag[serve]'``): the local
model behind ``/v1/chat/completions``, ``/v1/completions`` and ``/v1/models``; concurrent requests
batched onto the model by :class:`~gatedrag.serve.engine.Engine`. Imported only by the command.
"""
