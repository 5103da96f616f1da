"""A WebClient that counts its Slack Web API calls, by method and outcome, and 429s.

Outcomes are "ok", Slack's error code (`ratelimited`, `channel_not_found`: a set Slack
bounds), or "http_error" when no answer came; never a channel or user id.
"""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.slack_response import SlackResponse

from bot.metrics import Metrics


class MeteredWebClient(WebClient):
    def __init__(self, *args: Any, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._metrics = metrics

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:
        try:
            response = super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            self._metrics.slack_calls.labels(api_method, str(error or "error")).inc()
            if exc.response is not None and exc.response.status_code == 429:
                self._metrics.slack_429.labels(api_method).inc()  # no handler retried it
            raise
        except Exception:
            self._metrics.slack_calls.labels(api_method, "http_error").inc()
            raise
        self._metrics.slack_calls.labels(api_method, "ok").inc()
        return response


class CountingRateLimitHandler(RateLimitErrorRetryHandler):
    """Slack's own 429 retry (it honours Retry-After), counting each 429 it sees."""

    def __init__(self, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._metrics = metrics

    def _can_retry(
        self, *, state: RetryState, request: HttpRequest,
        response: HttpResponse | None = None, error: Exception | None = None,
    ) -> bool:  # fmt: skip
        limited = super()._can_retry(state=state, request=request, response=response,
                                     error=error)  # fmt: skip
        if limited:
            method = request.url.rstrip("/").rsplit("/", 1)[-1]
            self._metrics.slack_429.labels(method).inc()
        return limited
