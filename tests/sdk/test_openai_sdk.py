"""End-to-end tests of the gateway with the official OpenAI Python SDK.

Run through `tests/sdk/run.sh`, which starts the mock Codex upstream and the gateway and passes:
- GPT2API_URL: the gateway's root URL (http://127.0.0.1:PORT);
- GPT2API_ADMIN_PASSWORD: the password of the admin `admin`;
- GPT2API_ACCOUNTS_FILE: the mock's accounts, in the CLIProxyAPI format the gateway imports.

The mock answers `Hello from <account_id>! You said: <text>`, or `... Tool result: <output>` once
the input ends with a tool result; `[mock:...]` markers in the last user message shape the answer
(see mock-upstream/src/lib.rs).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import openai
import pytest

MODEL = "gpt-5"
TIMEOUT = 30.0

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TOOL_RESULT = "22 degrees and sunny in Paris"


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run these tests through tests/sdk/run.sh", returncode=2)
    return value


@dataclass
class Gateway:
    url: str
    admin_token: str
    api_key: str

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """Calls the admin API with the session token; returns the decoded JSON answer."""
        return admin_request(self.url, method, path, body, token=self.admin_token)

    def client(self, api_key: str | None = None, **kwargs: Any) -> openai.OpenAI:
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", TIMEOUT)
        return openai.OpenAI(
            base_url=f"{self.url}/v1", api_key=api_key or self.api_key, **kwargs
        )


def admin_request(
    base: str, method: str, path: str, body: Any = None, token: str | None = None
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{base}{path}", data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as err:
        raise AssertionError(
            f"{method} {path} answered {err.code}: {err.read().decode(errors='replace')}"
        ) from None
    return json.loads(text) if text else None


@pytest.fixture(scope="session")
def gateway() -> Gateway:
    url = _env("GPT2API_URL").rstrip("/")
    password = _env("GPT2API_ADMIN_PASSWORD")
    with open(_env("GPT2API_ACCOUNTS_FILE"), encoding="utf-8") as f:
        accounts = json.load(f)

    login = admin_request(url, "POST", "/admin/login", {"username": "admin", "password": password})
    token = login["token"]
    assert login["user"]["must_change_password"] is False

    imported = admin_request(url, "POST", "/admin/tokens/import", accounts, token=token)
    assert imported["failed"] == [], imported
    assert imported["imported"] + imported["updated"] == len(accounts), imported

    key = admin_request(url, "POST", "/admin/api-keys", {"name": "sdk"}, token=token)["key"]
    assert key.startswith("sk-")
    return Gateway(url=url, admin_token=token, api_key=key)


@pytest.fixture(scope="session")
def client(gateway: Gateway) -> openai.OpenAI:
    return gateway.client()


# --- models ----------------------------------------------------------------------------------------


def test_models_list(client: openai.OpenAI) -> None:
    models = list(client.models.list())
    ids = [m.id for m in models]
    assert MODEL in ids, ids
    assert all(m.object == "model" for m in models)


# --- chat completions ------------------------------------------------------------------------------


def test_chat_non_streaming(client: openai.OpenAI) -> None:
    text = "ping from the non-streaming SDK test"
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": text}]
    )
    assert completion.object == "chat.completion"
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert f"You said: {text}" in (choice.message.content or ""), choice.message.content
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_chat_streaming_with_usage(client: openai.OpenAI) -> None:
    text = "ping from the streaming SDK test"
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": text}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert len(chunks) >= 2, chunks
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1, "every chunk of one completion carries the same id"

    content = "".join(
        choice.delta.content or "" for c in chunks for choice in c.choices
    )
    assert f"You said: {text}" in content, content
    finish = [choice.finish_reason for c in chunks for choice in c.choices if choice.finish_reason]
    assert finish == ["stop"], finish

    last = chunks[-1]
    assert last.usage is not None, "include_usage: the last chunk carries the usage"
    assert last.usage.prompt_tokens > 0
    assert last.usage.completion_tokens > 0
    assert last.choices == [], "the usage chunk has no choices, as OpenAI's"
    assert all(c.usage is None for c in chunks[:-1]), "only the last chunk carries usage"


def _tool_question() -> list[dict[str, Any]]:
    return [{"role": "user", "content": "What is the weather in Paris? [mock:tool_call]"}]


def test_chat_tool_call_round_trip(client: openai.OpenAI) -> None:
    messages: list[Any] = _tool_question()
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == 1, choice.message
    call = calls[0]
    assert call.type == "function"
    assert call.id
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"] == "Paris"

    # What SDK users do: append the assistant message object as it came, then the tool's answer.
    messages.append(choice.message)
    messages.append({"role": "tool", "tool_call_id": call.id, "content": TOOL_RESULT})
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    answer = second.choices[0]
    assert answer.finish_reason == "stop"
    assert not answer.message.tool_calls
    assert f"Tool result: {TOOL_RESULT}" in (answer.message.content or ""), answer.message


def test_chat_tool_call_round_trip_streaming(client: openai.OpenAI) -> None:
    messages: list[Any] = _tool_question()
    stream = client.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER_TOOL], stream=True
    )
    # Accumulate the tool-call deltas by index, as SDK users do.
    calls: dict[int, dict[str, str]] = {}
    content = ""
    finish = []
    for chunk in stream:
        for choice in chunk.choices:
            delta = choice.delta
            content += delta.content or ""
            for tc in delta.tool_calls or []:
                acc = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                if tc.id:
                    acc["id"] = tc.id
                if tc.function and tc.function.name:
                    acc["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    acc["arguments"] += tc.function.arguments
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    assert finish == ["tool_calls"], finish
    assert content == ""
    assert list(calls) == [0], calls
    call = calls[0]
    assert call["id"]
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"])["city"] == "Paris"

    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ],
        }
    )
    messages.append({"role": "tool", "tool_call_id": call["id"], "content": TOOL_RESULT})
    stream = client.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER_TOOL], stream=True
    )
    answer = ""
    finish = []
    for chunk in stream:
        for choice in chunk.choices:
            answer += choice.delta.content or ""
            assert not choice.delta.tool_calls
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    assert finish == ["stop"], finish
    assert f"Tool result: {TOOL_RESULT}" in answer, answer


# --- responses -------------------------------------------------------------------------------------


def test_responses_non_streaming(client: openai.OpenAI) -> None:
    text = "ping from the responses SDK test"
    response = client.responses.create(model=MODEL, input=text)
    assert response.object == "response"
    assert response.status == "completed"
    assert f"You said: {text}" in response.output_text, response.output_text
    assert response.usage is not None
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0


def test_responses_streaming(client: openai.OpenAI) -> None:
    text = "ping from the streaming responses SDK test"
    stream = client.responses.create(model=MODEL, input=text, stream=True)
    events = list(stream)
    types = [e.type for e in events]
    assert "response.output_text.delta" in types, types
    assert types[-1] == "response.completed", types
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert f"You said: {text}" in deltas, deltas
    completed = events[-1].response
    assert completed.status == "completed"
    assert completed.output_text == deltas
    assert completed.usage is not None and completed.usage.input_tokens > 0


# --- errors ----------------------------------------------------------------------------------------


def test_wrong_key_raises_authentication_error(gateway: Gateway) -> None:
    bad = gateway.client(api_key="sk-" + "x" * 32)
    with pytest.raises(openai.AuthenticationError) as err:
        bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 401
    assert err.value.code == "invalid_api_key"

    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_rpm_limit_raises_rate_limit_error(gateway: Gateway) -> None:
    created = gateway.admin("POST", "/admin/api-keys", {"name": "sdk-rpm", "rpm_limit": 1})
    assert created["rpm_limit"] == 1
    limited = gateway.client(api_key=created["key"], max_retries=0)
    messages = [{"role": "user", "content": "first call within the limit"}]
    first = limited.chat.completions.create(model=MODEL, messages=messages)
    assert "You said: first call within the limit" in (first.choices[0].message.content or "")

    with pytest.raises(openai.RateLimitError) as err:
        limited.chat.completions.create(model=MODEL, messages=messages)
    assert err.value.status_code == 429
    assert err.value.code == "rate_limit_exceeded"
    assert err.value.response.headers.get("retry-after"), "a 429 tells when to retry"


def test_cut_chat_stream_raises_api_error(client: openai.OpenAI) -> None:
    """An upstream stream that stops without a terminal event must not end silently: the text
    already sent reaches the client, then iterating raises."""
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "this answer gets cut [mock:cut]"}],
        stream=True,
    )
    content = ""
    with pytest.raises(openai.APIError):
        for chunk in stream:
            for choice in chunk.choices:
                content += choice.delta.content or ""
                assert choice.finish_reason is None, "a cut answer must not look finished"
    assert content.startswith("Hello from "), content


def test_cut_responses_stream_reports_failure(client: openai.OpenAI) -> None:
    """The same for /v1/responses: the SDK yields error events there, so look for one."""
    types = []
    try:
        stream = client.responses.create(
            model=MODEL, input="this answer gets cut [mock:cut]", stream=True
        )
        types = [e.type for e in stream]
    except openai.APIError:
        return
    assert "response.completed" not in types, types
    assert types and types[-1] in ("error", "response.failed"), types
