"""Example provider plug-ins: each module is a registry ``ROW`` and its ``PROVIDER``; the
conformance suite (tests/test_provider_conformance.py) registers and checks every one."""
