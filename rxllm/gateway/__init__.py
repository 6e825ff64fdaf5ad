"""``rxllm serve``: an OpenAI- and Anthropic-compatible gateway on the router.

The gateway holds the keys, routes, retries, falls back, limits and accounts; clients speak the
OpenAI (``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/models``) or Anthropic
(``/v1/messages``) wire format to it. Streams are passed through chunk by chunk, never buffered.
Needs the ``gateway`` extra (PyYAML for the config file).
"""
