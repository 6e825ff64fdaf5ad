"""rxllm's benchmarks against the floor (aiohttp + msgspec) and its peers.

python -m benchmarks [--smoke]
"""
