"""Uploading a file the way Slack requires since files.upload was retired (2025-11):
`files.getUploadURLExternal`, the bytes POSTed to the URL it answers, then
`files.completeUploadExternal` shares the file into a channel or thread.

Only the last call shows anything to people, and a call that fails (429, 5xx) did
nothing, so the outbox may retry the three from the start: an upload that was never
completed is discarded by Slack.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

from slack_sdk import WebClient

TIMEOUT_S = 30


class UploadRefused(Exception):
    """Slack refused the file for good (not a rate limit or an outage): don't retry."""


class UploadUnavailable(Exception):
    """The upload URL answered 429 or 5xx, or could not be reached: retry later."""


def upload_png(
    client: WebClient, *, channel: str, thread_ts: str | None, data: bytes, filename: str,
    title: str, alt: str,
) -> dict[str, Any]:  # fmt: skip
    """Share `data` as `filename` in `channel` (in the thread `thread_ts` if given)."""
    got = client.files_getUploadURLExternal(filename=filename, length=len(data), alt_txt=alt)
    post_bytes(str(got["upload_url"]), data)
    client.files_completeUploadExternal(
        files=[{"id": got["file_id"], "title": title}], channel_id=channel, thread_ts=thread_ts
    )
    return {"channel": channel, "file_id": got["file_id"], "thread_ts": thread_ts}


def post_bytes(url: str, data: bytes) -> None:
    """POST the raw bytes, as Slack's upload URL takes them."""
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/octet-stream"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
            answer.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:
            raise UploadUnavailable(f"upload URL answered {exc.code}") from exc
        raise UploadRefused(f"upload URL answered {exc.code}") from exc
    except OSError as exc:
        raise UploadUnavailable(f"upload URL unreachable: {exc}") from exc
