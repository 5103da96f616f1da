"""The Slack Web API double, driven by a real slack_sdk WebClient over HTTP."""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from slack_double import SlackDouble
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.http_retry.handler import RetryHandler

FAST = FixedValueRetryIntervalCalculator(0.01)


@pytest.fixture
def slack() -> Iterator[SlackDouble]:
    with SlackDouble(groups={"S0ONCALL": ["U0ALICE", "U0BOB"]}) as double:
        yield double


def client_for(slack: SlackDouble, *handlers: RetryHandler, token: str | None = None) -> WebClient:
    return WebClient(token=token or slack.token, base_url=slack.api_url,
                     retry_handlers=list(handlers), timeout=10)  # fmt: skip


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def raw_post(url: str, body: bytes, content_type: str) -> dict:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


# -- methods -------------------------------------------------------------------


def test_auth_test_and_tokens(slack):
    reply = client_for(slack).auth_test()
    assert (reply["user_id"], reply["bot_id"], reply["team_id"]) == ("U0BOT", "B0BOT", "T0TEAM")
    with pytest.raises(SlackApiError) as wrong:
        client_for(slack, token="xoxb-wrong").auth_test()
    assert wrong.value.response["error"] == "invalid_auth"
    assert raw_post(slack.api_url + "auth.test", b"", "application/x-www-form-urlencoded") == {
        "ok": False, "error": "not_authed"}  # fmt: skip


def test_posts_get_increasing_ts_and_the_message_state_follows_updates(slack):
    client = client_for(slack)
    first = client.chat_postMessage(channel="C0OPS", text="board", blocks=[section("v1")])
    reply = client.chat_postMessage(channel="C0OPS", text="detail", thread_ts=first["ts"])
    other = client.chat_postMessage(channel="C0OPS", text="second board")
    assert first["channel"] == "C0OPS"
    assert float(first["ts"]) < float(reply["ts"]) < float(other["ts"])
    client.chat_update(channel="C0OPS", ts=first["ts"], text="board", blocks=[section("v2")])

    board = slack.message("C0OPS", first["ts"])
    assert board.blocks == [section("v2")] and board.edits == 1
    assert [v["blocks"] for v in board.versions] == [[section("v1")], [section("v2")]]
    assert [m.text for m in slack.messages("C0OPS")] == ["board", "second board"]
    assert [m.text for m in slack.thread("C0OPS", first["ts"])] == ["detail"]
    with pytest.raises(SlackApiError, match="message_not_found"):
        client.chat_update(channel="C0OPS", ts="1.000000", text="x")


def test_ephemeral_messages_are_kept_per_user(slack):
    reply = client_for(slack).chat_postEphemeral(channel="C0OPS", user="U0BOB", text="not yours")
    assert reply["message_ts"]
    assert [e["text"] for e in slack.ephemerals("U0BOB")] == ["not yours"]
    assert slack.ephemerals("U0ALICE") == []


def test_direct_messages_to_a_user_id(slack):
    client = client_for(slack)
    posted = client.chat_postMessage(channel="U0BOB", text="please approve")
    opened = client.conversations_open(users="U0BOB")
    assert posted["channel"] == opened["channel"]["id"] == "D0BOB"
    assert [m.text for m in slack.messages("D0BOB")] == ["please approve"]


def test_views_open_update_and_publish(slack):
    client = client_for(slack)
    modal = {"type": "modal", "callback_id": "opsloop.input", "private_metadata": "{}",
             "title": {"type": "plain_text", "text": "Input needed"}, "blocks": []}  # fmt: skip
    opened = client.views_open(trigger_id="t1", view=modal)["view"]
    assert opened["callback_id"] == "opsloop.input" and opened["id"].startswith("V")
    with pytest.raises(SlackApiError, match="expired_trigger_id"):
        client.views_open(trigger_id="t1", view=modal)  # trigger ids are single use
    changed = {**modal, "title": {"type": "plain_text", "text": "Thanks"}}
    client.views_update(view_id=opened["id"], hash=opened["hash"], view=changed)
    assert slack.view(opened["id"])["title"]["text"] == "Thanks"
    with pytest.raises(SlackApiError, match="hash_conflict"):
        client.views_update(view_id=opened["id"], hash=opened["hash"], view=changed)
    home = {"type": "home", "blocks": [section("waiting for you: 2")]}
    client.views_publish(user_id="U0BOB", view=home)
    assert slack.home("U0BOB")["blocks"] == [section("waiting for you: 2")]


def test_usergroups_and_users(slack):
    client = client_for(slack)
    assert client.usergroups_users_list(usergroup="S0ONCALL")["users"] == ["U0ALICE", "U0BOB"]
    slack.set_group("S0ONCALL", ["U0CAROL"])
    assert client.usergroups_users_list(usergroup="S0ONCALL")["users"] == ["U0CAROL"]
    with pytest.raises(SlackApiError, match="no_such_subteam"):
        client.usergroups_users_list(usergroup="S0NOPE")
    slack.add_user("U0BOB", name="bob", real_name="Bob B")
    assert client.users_info(user="U0BOB")["user"]["real_name"] == "Bob B"
    assert client.users_info(user="U0ANYONE")["user"]["id"] == "U0ANYONE"
    get = slack.calls("usergroups.users.list")[0]
    assert get.params == {"usergroup": "S0ONCALL"} and get.token == slack.token


def test_form_bodies_and_a_token_field_work_too(slack):
    blocks = json.dumps([section("from a form")])
    body = f"token={slack.token}&channel=C0OPS&text=hi&blocks={blocks}".encode()
    reply = raw_post(slack.api_url + "chat.postMessage", body, "application/x-www-form-urlencoded")
    assert reply["ok"] is True
    assert slack.message("C0OPS", reply["ts"]).blocks == [section("from a form")]


def test_blocks_and_views_past_slacks_limits_are_refused(slack):
    client = client_for(slack)
    with pytest.raises(SlackApiError) as too_many:
        client.chat_postMessage(channel="C0OPS", text="x", blocks=[section("b")] * 51)
    assert too_many.value.response["error"] == "invalid_blocks"
    button = {
        "type": "actions",
        "elements": [
            {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "b" * 76}}
        ],
    }
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        client.chat_postMessage(channel="C0OPS", text="x", blocks=[button])
    with pytest.raises(SlackApiError, match="msg_blocks_too_long"):
        client.chat_postMessage(channel="C0OPS", text="x", blocks=[section("t" * 2900)] * 5)
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "t" * 25}, "blocks": []}
    with pytest.raises(SlackApiError) as bad_view:
        client.views_open(trigger_id="t2", view=modal)
    assert "view.title" in bad_view.value.response["response_metadata"]["messages"][0]
    assert slack.messages("C0OPS") == []


# -- faults --------------------------------------------------------------------


def test_rate_limit_retry_waits_for_retry_after(slack):
    slack.fail_next("chat.postMessage", status=429, retry_after=1)
    client = client_for(slack, RateLimitErrorRetryHandler(max_retry_count=1))
    assert client.chat_postMessage(channel="C0OPS", text="once")["ok"]
    limited, accepted = slack.calls("chat.postMessage")
    assert (limited.status, limited.faulted, accepted.status) == (429, True, 200)
    assert accepted.at - limited.at >= 1.0
    assert len(slack.messages("C0OPS")) == 1


def test_without_a_retry_handler_the_429_reaches_the_caller(slack):
    slack.fail_next("chat.update", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as limited:
        client_for(slack).chat_update(channel="C0OPS", ts="1.0", text="x")
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "7"
    assert limited.value.response["error"] == "ratelimited"


def test_server_errors_are_retried(slack):
    slack.fail_next("chat.postMessage", status=500, times=2)
    client = client_for(slack, ServerErrorRetryHandler(max_retry_count=2, interval_calculator=FAST))
    assert client.chat_postMessage(channel="C0OPS", text="after two 500s")["ok"]
    assert [c.status for c in slack.calls("chat.postMessage")] == [500, 500, 200]
    with pytest.raises(SlackApiError):
        slack.fail_next("chat.postMessage", status=500, times=3)
        client.chat_postMessage(channel="C0OPS", text="gives up after two retries")


def test_api_errors_can_be_injected(slack):
    slack.fail_next("chat.postMessage", status=200, error="channel_not_found")
    with pytest.raises(SlackApiError, match="channel_not_found"):
        client_for(slack).chat_postMessage(channel="C0OPS", text="x")
    assert client_for(slack).chat_postMessage(channel="C0OPS", text="x")["ok"]


def test_a_storm_is_seeded_and_retries_deliver_every_message_once(slack):
    slack.storm(rate=0.3, seed=1, retry_after=0)
    client = client_for(
        slack,
        RateLimitErrorRetryHandler(max_retry_count=20),
        ServerErrorRetryHandler(max_retry_count=20, interval_calculator=FAST),
    )
    for n in range(15):
        client.chat_postMessage(channel="C0OPS", text=f"message {n}")
    assert [m.text for m in slack.messages("C0OPS")] == [f"message {n}" for n in range(15)]
    statuses = [c.status for c in slack.calls("chat.postMessage")]
    assert statuses.count(200) == 15 and {429, 500} <= set(statuses)

    def pattern(seed: int) -> list[int]:
        with SlackDouble() as other:
            other.storm(rate=0.3, seed=seed)
            plain = client_for(other)
            for _ in range(40):
                with contextlib.suppress(SlackApiError):
                    plain.auth_test()
            return [c.status for c in other.calls()]

    assert pattern(7) == pattern(7) != pattern(8)
    assert 4 <= sum(s != 200 for s in pattern(7)) <= 24


def test_storm_can_target_methods_and_calm_ends_it(slack):
    slack.storm(rate=1.0, methods=["chat.update"], statuses=[503])
    client = client_for(slack)
    assert client.chat_postMessage(channel="C0OPS", text="x")["ok"]
    with pytest.raises(SlackApiError):
        client.chat_update(channel="C0OPS", ts="1.0", text="y")
    slack.calm()
    with pytest.raises(SlackApiError, match="message_not_found"):
        client.chat_update(channel="C0OPS", ts="1.0", text="y")


# -- recording and waiting -----------------------------------------------------


def test_calls_from_many_threads_are_all_recorded(slack):
    client = client_for(slack)

    def post(worker: int) -> None:
        for n in range(25):
            client.chat_postMessage(channel="C0OPS", text=f"{worker}-{n}")

    threads = [threading.Thread(target=post, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    calls = slack.calls("chat.postMessage", ok=True)
    assert len(calls) == 200
    assert len({c.response["ts"] for c in calls}) == 200
    assert len(slack.messages("C0OPS")) == 200


def test_wait_for_returns_when_the_call_arrives(slack):
    client = client_for(slack)
    later = threading.Timer(0.05, client.chat_postMessage, kwargs={"channel": "C0", "text": "hi"})
    later.start()
    (call,) = slack.wait_for_calls("chat.postMessage", timeout=30)
    assert call.params["text"] == "hi"
    later.join()


def test_wait_for_gives_up_at_its_deadline_and_says_what_it_saw(slack):
    client_for(slack).auth_test()
    seen = r"timed out after 0.1s waiting for a reply.*auth\.test:200"
    with pytest.raises(AssertionError, match=seen):
        slack.wait_for(lambda calls: None, timeout=0.1, what="a reply")


def test_response_urls_keep_what_was_posted(slack):
    body = json.dumps({"response_type": "ephemeral", "text": "usage: ..."}).encode()
    assert raw_post(slack.response_url("cmd-1"), body, "application/json") == {"ok": True}
    assert slack.responses("cmd-1") == [{"response_type": "ephemeral", "text": "usage: ..."}]
    assert slack.calls("response_url")[0].params["_name"] == "cmd-1"


# -- message metadata, history and lost answers --------------------------------


def test_metadata_is_kept_and_shown_only_when_asked(slack):
    client = client_for(slack)
    tag = {"event_type": "opsloop_outbox", "event_payload": {"key": "board:r1"}}
    parent = client.chat_postMessage(channel="C0OPS", text="board", metadata=tag)
    assert parent["message"]["metadata"] == tag
    client.chat_postMessage(channel="C0OPS", text="reply", thread_ts=parent["ts"],
                            metadata={**tag, "event_payload": {"key": "gate:i1"}})  # fmt: skip
    client.chat_postMessage(channel="C0OPS", text="plain")
    plain = client.conversations_history(channel="C0OPS")["messages"]
    assert [m["text"] for m in plain] == ["plain", "board"]  # newest first, no replies
    assert all("metadata" not in m for m in plain)
    tagged = client.conversations_history(channel="C0OPS", include_all_metadata=True)
    assert tagged["messages"][1]["metadata"] == tag
    thread = client.conversations_replies(channel="C0OPS", ts=parent["ts"],
                                          include_all_metadata=True)["messages"]  # fmt: skip
    assert [m.get("metadata", {}).get("event_payload") for m in thread] == [
        {"key": "board:r1"}, {"key": "gate:i1"}]  # fmt: skip
    with pytest.raises(SlackApiError) as bad:
        client.chat_postMessage(channel="C0OPS", text="x", metadata={"event_type": "t"})
    assert bad.value.response["error"] == "invalid_metadata_format"
    with pytest.raises(SlackApiError) as missing:
        client.conversations_replies(channel="C0OPS", ts="1.000001")
    assert missing.value.response["error"] == "thread_not_found"


def test_history_pages_and_bounds(slack):
    client = client_for(slack)
    posted = [client.chat_postMessage(channel="C0OPS", text=str(n))["ts"] for n in range(5)]
    first = client.conversations_history(channel="C0OPS", limit=2, oldest=posted[0])
    assert [m["text"] for m in first["messages"]] == ["4", "3"] and first["has_more"]
    cursor = first["response_metadata"]["next_cursor"]
    rest = client.conversations_history(channel="C0OPS", limit=2, oldest=posted[0], cursor=cursor)
    assert [m["text"] for m in rest["messages"]] == ["2", "1"]  # `oldest` itself excluded
    with pytest.raises(SlackApiError) as unknown:
        client.conversations_history(channel="U0ALICE")  # a user id, not a DM
    assert unknown.value.response["error"] == "channel_not_found"


def test_a_lost_answer_still_posts(slack):
    client = client_for(slack)
    slack.fail_next("chat.postMessage", status=500, lost=True)
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C0OPS", text="landed anyway")
    assert [m.text for m in slack.messages("C0OPS")] == ["landed anyway"]
