"""Sending outbox rows to Slack: render from the current state, then one Web API call.

Runs on the outbox dispatcher's thread only, never on Bolt's listener pool.
The WebClient retries 429 (honouring Retry-After), 5xx and connection errors
itself; what still fails goes back to the outbox with a delay.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.slack import blocks
from bot.slack.outbox import Message
from bot.slack.uploads import UploadRefused, upload_png
from orchestrator.protocol import InteractionView, RunView


def web_client(token: str, base_url: str) -> WebClient:
    """A WebClient that rides out rate limits, 5xx and dropped connections."""
    return WebClient(
        token=token, base_url=base_url, timeout=10,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=3),
            RateLimitErrorRetryHandler(max_retry_count=5),
            ServerErrorRetryHandler(max_retry_count=3),
        ],
    )  # fmt: skip


class ChannelPacer:
    """About one post per second per channel, with a small burst (Slack's posting limit)."""

    def __init__(self, per_second: float = 1.0, burst: int = 5) -> None:
        self.per_second, self.burst = per_second, burst
        self._tokens: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait(self, channel: str) -> None:
        with self._lock:
            now = time.monotonic()
            tokens, at = self._tokens.get(channel, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - at) * self.per_second)
            delay = 0.0 if tokens >= 1 else (1 - tokens) / self.per_second
            self._tokens[channel] = (tokens - 1, now + delay)
        if delay:
            time.sleep(delay)


class SlackDelivery:
    """The outbox's `send`: returns {"channel", "ts"} of the message it posted or edited."""

    def __init__(
        self,
        client: WebClient,
        run: Callable[[str], RunView],
        interaction: Callable[[str], InteractionView | None],
        pacer: ChannelPacer | None = None,
    ) -> None:
        self.client = client
        self.run, self.interaction = run, interaction
        self.pacer = pacer or ChannelPacer()

    def __call__(self, message: Message) -> Mapping[str, Any]:
        handler = getattr(self, "_" + message.kind.replace(".", "_"))
        return handler(message)

    def _post(
        self, channel: str, content: Mapping[str, Any], thread_ts: str | None = None,
        broadcast: bool = False,
    ) -> Any:  # fmt: skip
        self.pacer.wait(channel)
        extra = {"reply_broadcast": True} if broadcast and thread_ts else {}
        reply = self.client.chat_postMessage(
            channel=channel,
            text=content["text"],
            blocks=content["blocks"],
            thread_ts=thread_ts,
            **extra,
        )
        return {"channel": reply["channel"], "ts": reply["ts"]}

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
        return self._post(message.channel, blocks.render_run_board(self.run(message.run_id)))

    def _board_update(self, message: Message) -> Any:
        assert message.run_id and message.after_result
        return self._update(message.after_result, blocks.render_run_board(self.run(message.run_id)))

    def _gate(self, message: Message) -> Mapping[str, Any]:
        assert message.run_id
        interaction = self.interaction(message.payload["interaction_id"])
        assert interaction is not None
        editable = bool(interaction.editable_params)
        run = self.run(message.run_id)
        return blocks.render_interaction(run, interaction, allow_edit_params=editable)

    def _gate_post(self, message: Message) -> Any:
        assert message.channel
        return self._post(message.channel, self._gate(message), self._thread(message),
                          broadcast=bool(message.payload.get("broadcast")))  # fmt: skip

    def _gate_update(self, message: Message) -> Any:
        assert message.after_result
        return self._update(message.after_result, self._gate(message))

    def _dm_post(self, message: Message) -> Any:
        assert message.channel  # a user id: Slack posts in the app's DM with them
        return self._post(message.channel, self._gate(message))

    def _thread_escalation(self, message: Message) -> Any:
        assert message.channel and message.run_id
        interaction = self.interaction(message.payload["interaction_id"])
        assert interaction is not None
        to = interaction.escalate_to or {}
        content = blocks.render_reminder(self.run(message.run_id), interaction,
                                         escalate_to=[*to.get("users", ()),
                                                      *to.get("groups", ())])  # fmt: skip
        return self._post(message.channel, content, self._thread(message))

    def _schedule_paused(self, message: Message) -> Any:
        assert message.channel
        payload = message.payload
        return self._post(
            message.channel,
            blocks.render_schedule_paused(payload["schedule_id"], payload["reason"]),
        )

    def _thread_step(self, message: Message) -> Any:
        assert message.channel and message.run_id
        run = self.run(message.run_id)
        step = next(s for s in run.steps if s.step_id == message.payload["step_id"])
        return self._post(message.channel, blocks.render_step_detail(run, step),
                          self._thread(message))  # fmt: skip

    def _thread_reminder(self, message: Message) -> Any:
        assert message.channel and message.run_id
        interaction = self.interaction(message.payload["interaction_id"])
        if interaction is None or interaction.status != "pending":
            return {"skipped": "answered before the reminder went out"}
        content = blocks.render_reminder(self.run(message.run_id), interaction)
        return self._post(message.channel, content, self._thread(message))

    def _report_post(self, message: Message) -> Any:
        assert message.channel
        return self._post(message.channel, message.payload["content"])

    def _report_chart(self, message: Message) -> Any:
        """Upload the chart into the report's thread; if Slack refuses it for good, say so
        there instead (429, 5xx and lost connections raise: the outbox tries again)."""
        assert message.channel
        payload, thread = message.payload, self._thread(message)
        try:
            return upload_png(
                self.client, channel=message.channel, thread_ts=thread,
                data=base64.b64decode(payload["png"]), filename="opsloop-report.png",
                title=payload["title"], alt=payload["alt"],
            )  # fmt: skip
        except SlackApiError as exc:
            if exc.response.status_code == 429 or exc.response.status_code >= 500:
                raise
            error = str(exc.response.get("error"))
        except UploadRefused as exc:
            error = str(exc)
        self._post(message.channel, blocks.render_chart_failed(error, payload["alt"]), thread)
        return {"chart_failed": error}
