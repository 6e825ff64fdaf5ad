"""The gateway benchmark: ``rxllm serve`` and LiteLLM's proxy side by side, one upstream.

python -m benchmarks.gateway [--quick]   (``make bench-gateway``)
"""
