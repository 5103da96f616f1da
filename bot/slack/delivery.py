"""Sending outbox rows to Slack: render from the current state, then one Web API call.

Runs on the dispatcher's senders (bot/slack/dispatcher.py), never on Bolt's
listener pool, and never sleeps: the client it uses retries nothing itself.
A 429 becomes `Deferred` (the row waits in the outbox for Retry-After); any
other failure goes back to the outbox with a delay. Every post carries the
row's key in its message metadata, so a post whose answer was lost (a 500 or
a reset after Slack did it, or a sender that died) is looked up in the channel
or thread before it is posted again: never twice.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.metrics import Metrics
from bot.slack import blocks
from bot.slack.metered import CountingRateLimitHandler, MeteredWebClient
from bot.slack.outbox import Message
from bot.slack.pacing import Deferred
from bot.slack.shown import gate_shown, run_shown
from bot.slack.uploads import UploadRefused, upload_png
from orchestrator.protocol import InteractionView, RunView

EVENT_TYPE = "opsloop_outbox"  # message metadata that carries the outbox key
LOOKBACK_S = 300  # how far before a row was queued its post may have landed (clock skew)
LOOKUP_PAGES = 5


def web_client(token: str, base_url: str, metrics: Metrics | None = None) -> WebClient:
    """A WebClient that rides out rate limits, 5xx and dropped connections; with `metrics`,
    it counts its calls and the 429s it rode out (bot/slack/metered.py)."""
    limits = (RateLimitErrorRetryHandler(max_retry_count=5) if metrics is None
              else CountingRateLimitHandler(metrics, max_retry_count=5))  # fmt: skip
    handlers = [ConnectionErrorRetryHandler(max_retry_count=3), limits,
                ServerErrorRetryHandler(max_retry_count=3)]  # fmt: skip
    if metrics is None:
        return WebClient(token=token, base_url=base_url, timeout=10, retry_handlers=handlers)
    return MeteredWebClient(token=token, base_url=base_url, timeout=10,
                            retry_handlers=handlers, metrics=metrics)  # fmt: skip


def delivery_client(token: str, base_url: str, metrics: Metrics | None = None) -> WebClient:
    """The outbox's client: no retries of its own. Its retry handlers slept on the sending
    thread and re-sent posts Slack had already made (22 boards for 12 runs). With
    `metrics`, it counts its calls and 429s as the app's client does."""
    if metrics is None:
        return WebClient(token=token, base_url=base_url, timeout=10, retry_handlers=[])
    return MeteredWebClient(token=token, base_url=base_url, timeout=10, retry_handlers=[],
                            metrics=metrics)  # fmt: skip


class SlackDelivery:
    """The outbox's `send`: returns {"channel", "ts"} of the message it posted or edited."""

    def __init__(
        self,
        client: WebClient,
        run: Callable[[str], RunView],
        interaction: Callable[[str], InteractionView | None],
    ) -> None:
        self.client = client
        self.run, self.interaction = run, interaction

    def __call__(self, message: Message) -> Mapping[str, Any]:
        handler = getattr(self, "_" + message.kind.replace(".", "_"))
        try:
            return handler(message)
        except SlackApiError as exc:
            if exc.response.status_code != 429:
                raise
            retry_after = float(exc.response.headers.get("Retry-After", 1) or 1)
            raise Deferred(retry_after, f"Slack said 429 to {message.kind}") from exc

    def _post(
        self, message: Message, content: Mapping[str, Any], thread_ts: str | None = None,
        broadcast: bool = False, channel: str | None = None, refresh: bool = False,
    ) -> Any:  # fmt: skip
        """Post `content`, or find the post an earlier attempt made; `refresh`: a message
        found is edited to `content` (it shows the state of its time, and the row will
        record this one as shown: else no edit would ever come)."""
        channel = channel or message.channel
        assert channel
        if message.uncertain and (found := self._find(message, channel, thread_ts)):
            return self._update(found, content) if refresh else found
        extra = {"reply_broadcast": True} if broadcast and thread_ts else {}
        reply = self.client.chat_postMessage(
            channel=channel, text=content["text"], blocks=content["blocks"], thread_ts=thread_ts,
            metadata={"event_type": EVENT_TYPE, "event_payload": {"key": message.id}}, **extra,
        )  # fmt: skip
        return {"channel": reply["channel"], "ts": reply["ts"]}

    def _find(
        self, message: Message, channel: str, thread_ts: str | None,
        posted: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> Any:  # fmt: skip
        """The message an earlier attempt posted, if it landed: {"channel", "ts"} or None.
        `posted` tells it apart (default: the outbox key in its metadata)."""
        if channel[:1] in ("U", "W"):  # a DM: history needs the conversation's id
            channel = self.client.conversations_open(users=channel)["channel"]["id"]
        since = _epoch(message.created_at) - LOOKBACK_S
        cursor = None
        for _ in range(LOOKUP_PAGES):
            args = {"channel": channel, "oldest": f"{since:.6f}", "limit": 200,
                    "include_all_metadata": True, "cursor": cursor}  # fmt: skip
            page = (self.client.conversations_replies(ts=thread_ts, **args) if thread_ts
                    else self.client.conversations_history(**args))  # fmt: skip
            for found in page["messages"]:
                payload = (found.get("metadata") or {}).get("event_payload") or {}
                if posted(found) if posted else payload.get("key") == message.id:
                    return {"channel": channel, "ts": found["ts"]}
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return None

    def _update(self, target: Mapping[str, Any], content: Mapping[str, Any]) -> Any:
        reply = self.client.chat_update(
            channel=target["channel"], ts=target["ts"], text=content["text"],
            blocks=content["blocks"],
        )  # fmt: skip
        return {"channel": reply["channel"], "ts": reply["ts"]}

    def _thread(self, message: Message) -> str | None:
        return (message.after_result or {}).get("ts")

    def _board_post(self, message: Message) -> Any:
        assert message.channel and message.run_id
        run = self.run(message.run_id)
        content = blocks.render_run_board(run)
        return {**self._post(message, content, refresh=True), "shown": run_shown(run)}

    def _board_update(self, message: Message) -> Any:
        assert message.run_id and message.after_result
        run = self.run(message.run_id)
        return {**self._update(message.after_result, blocks.render_run_board(run)),
                "shown": run_shown(run)}  # fmt: skip

    def _gate(self, message: Message) -> tuple[Mapping[str, Any], str]:
        """The gate message's content, and what it shows (bot/slack/shown.py)."""
        assert message.run_id
        interaction = self.interaction(message.payload["interaction_id"])
        assert interaction is not None
        editable = bool(interaction.editable_params)
        run = self.run(message.run_id)
        content = blocks.render_interaction(run, interaction, allow_edit_params=editable)
        return content, gate_shown(interaction)

    def _gate_post(self, message: Message) -> Any:
        assert message.channel
        content, shown = self._gate(message)
        return {**self._post(message, content, self._thread(message),
                             broadcast=bool(message.payload.get("broadcast")), refresh=True),
                "shown": shown}  # fmt: skip

    def _gate_update(self, message: Message) -> Any:
        assert message.after_result
        content, shown = self._gate(message)
        return {**self._update(message.after_result, content), "shown": shown}

    def _dm_post(self, message: Message) -> Any:
        assert message.channel  # a user id: Slack posts in the app's DM with them
        content, shown = self._gate(message)
        return {**self._post(message, content, refresh=True), "shown": shown}

    def _thread_escalation(self, message: Message) -> Any:
        assert message.channel and message.run_id
        interaction = self.interaction(message.payload["interaction_id"])
        if interaction is None or interaction.status != "pending":
            return {"skipped": "answered before the escalation went out"}
        to = interaction.escalate_to or {}
        content = blocks.render_reminder(self.run(message.run_id), interaction,
                                         escalate_to=[*to.get("users", ()),
                                                      *to.get("groups", ())])  # fmt: skip
        return self._post(message, content, self._thread(message))

    def _schedule_paused(self, message: Message) -> Any:
        assert message.channel
        payload = message.payload
        return self._post(
            message,
            blocks.render_schedule_paused(payload["schedule_id"], payload["reason"]),
        )

    def _thread_step(self, message: Message) -> Any:
        assert message.channel and message.run_id
        run = self.run(message.run_id)
        step = next(s for s in run.steps if s.step_id == message.payload["step_id"])
        return self._post(message, blocks.render_step_detail(run, step),
                          self._thread(message))  # fmt: skip

    def _thread_reminder(self, message: Message) -> Any:
        assert message.channel and message.run_id
        interaction = self.interaction(message.payload["interaction_id"])
        if interaction is None or interaction.status != "pending":
            return {"skipped": "answered before the reminder went out"}
        content = blocks.render_reminder(self.run(message.run_id), interaction)
        return self._post(message, content, self._thread(message))

    def _report_post(self, message: Message) -> Any:
        assert message.channel
        return self._post(message, message.payload["content"])

    def _report_chart(self, message: Message) -> Any:
        """Upload the chart into the report's thread; if Slack refuses it for good, say so
        there instead (429, 5xx and lost connections raise: the outbox tries again)."""
        assert message.channel
        payload, thread = message.payload, self._thread(message)
        # A file share carries no metadata: its file name carries the outbox key instead,
        # so a share whose answer was lost is found before the chart is uploaded again.
        name = f"opsloop-report-{hashlib.sha256(message.id.encode()).hexdigest()[:12]}.png"
        if message.uncertain and (found := self._find(
            message, message.channel, thread,
            lambda m: any(f.get("name") == name for f in m.get("files") or ()),
        )):  # fmt: skip
            return {**found, "found": True}
        try:
            return upload_png(
                self.client, channel=message.channel, thread_ts=thread,
                data=base64.b64decode(payload["png"]), filename=name,
                title=payload["title"], alt=payload["alt"],
            )  # fmt: skip
        except SlackApiError as exc:
            if exc.response.status_code == 429 or exc.response.status_code >= 500:
                raise
            error = str(exc.response.get("error"))
        except UploadRefused as exc:
            error = str(exc)
        self._post(message, blocks.render_chart_failed(error, payload["alt"]), thread)
        return {"chart_failed": error}


def _epoch(at: datetime | None) -> float:
    return at.timestamp() if at is not None else 0.0
