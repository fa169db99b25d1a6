"""Test helpers that are real things, not mocks: e.g. a loopback OpenAI-compatible server.

Nothing here is imported by the harness itself; tests (and judges' code) import it explicitly.
"""

from harness.testing.openai_server import FakeOpenAIServer, ReceivedImage, ReceivedRequest, Rule

__all__ = ["FakeOpenAIServer", "ReceivedImage", "ReceivedRequest", "Rule"]
