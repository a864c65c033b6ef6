"""The route table as data: what each /v1 method and path does for the allowlist."""

import pytest

from proxy.routes import Policy, classify

MODEL, NO_MODEL, UNPOLICED = Policy.MODEL, Policy.NO_MODEL, Policy.UNPOLICED


@pytest.mark.parametrize(
    ("method", "path", "policy"),
    [
        ("POST", "/v1/chat/completions", MODEL),
        ("GET", "/v1/chat/completions", NO_MODEL),  # listing stored completions
        ("POST", "/v1/chat/completions/", UNPOLICED),  # an empty id is no stored object
        ("POST", "/v1/chat/completions/chatcmpl_1", NO_MODEL),  # its metadata
        ("DELETE", "/v1/chat/completions/chatcmpl_1", NO_MODEL),
        ("PUT", "/v1/chat/completions/chatcmpl_1", UNPOLICED),
        ("POST", "/v1/responses", MODEL),
        ("DELETE", "/v1/responses/input_tokens", NO_MODEL),  # a model path: other methods
        ("GET", "/v1/responses/resp_1/input_items", NO_MODEL),
        ("DELETE", "/v1/responses/resp_1", NO_MODEL),
        ("POST", "/v1/responses/resp_1/cancel", NO_MODEL),
        ("POST", "/v1/responses/resp_1/other", UNPOLICED),
        ("POST", "/v1/responses/resp_1", UNPOLICED),
        ("HEAD", "/v1/models/gpt-4o-mini", NO_MODEL),
        ("POST", "/v1/models", UNPOLICED),
        ("POST", "/v1/audio/speech", MODEL),
        ("POST", "/v1/audio/other", UNPOLICED),
        ("GET", "/v1/audio/speech", NO_MODEL),
        ("GET", "/v1/files", UNPOLICED),
        ("POST", "/v1/batches", UNPOLICED),
        ("POST", "/v1/unknown", UNPOLICED),
    ],
)
def test_each_endpoint_row_decides_what_a_call_does(method: str, path: str, policy: Policy) -> None:
    assert classify(method, path).policy is policy
