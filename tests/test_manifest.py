"""manifest.yml asks for what the code uses: the /ops command, interactivity, the events,
and exactly the bot scopes of the Web API methods in bot/slack/scopes.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk import WebClient

from bot.slack import commands, scopes

ROOT = Path(__file__).resolve().parent.parent
# WebClient's methods named after Web API methods (chat_postMessage, ...), not its helpers.
API_METHODS = {
    name for name in dir(WebClient)
    if "_" in name and not name.startswith(("_", "api_", "BASE"))
    and callable(getattr(WebClient, name))
}  # fmt: skip
CALL = re.compile(r"\.([a-z]+_[A-Za-z0-9_]+)\(")
API_CALL = re.compile(r"api_call\(\s*[\"']([\w.]+)[\"']")


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "manifest.yml").read_text())


def test_display_information_fits_slacks_limits(manifest):
    info = manifest["display_information"]
    assert 0 < len(info["name"]) <= 35
    assert len(info["description"]) <= 140
    assert 175 <= len(info["long_description"]) <= 4000
    assert manifest["features"]["bot_user"]["display_name"] == "opsloop"


def test_slash_command_is_ops(manifest):
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/ops" == scopes.SLASH_COMMAND == commands.SLASH_COMMAND
    assert command["should_escape"] is False
    assert len(command["description"]) <= 2000 and len(command["usage_hint"]) <= 1000
    for word in ("run", "status", "pending", "help"):
        assert word in command["usage_hint"]


def test_every_request_url_is_the_events_endpoint(manifest):
    settings = manifest["settings"]
    urls = {
        manifest["features"]["slash_commands"][0]["url"],
        settings["interactivity"]["request_url"],
        settings["interactivity"]["message_menu_options_url"],  # decisions over 100 options
        settings["event_subscriptions"]["request_url"],
    }
    assert urls == {"https://opsloop.example.com" + scopes.EVENTS_PATH}


def test_http_mode_settings(manifest):
    settings = manifest["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is False
    assert settings["token_rotation_enabled"] is False
    assert settings["org_deploy_enabled"] is False


def test_bot_scopes_are_exactly_the_ones_the_code_needs(manifest):
    asked = manifest["oauth_config"]["scopes"]["bot"]
    assert len(asked) == len(set(asked))
    assert set(asked) == scopes.REQUIRED_SCOPES
    expected = {"chat:write", "commands", "files:write", "usergroups:read", "channels:history",
                "groups:history", "im:history", "im:write"}  # fmt: skip
    assert expected == scopes.REQUIRED_SCOPES
    assert "user" not in manifest["oauth_config"]["scopes"]


def test_bot_events_and_app_home(manifest):
    assert tuple(manifest["settings"]["event_subscriptions"]["bot_events"]) == scopes.BOT_EVENTS
    home = manifest["features"]["app_home"]
    assert home["home_tab_enabled"] is ("views.publish" in scopes.METHOD_SCOPES)
    assert home["messages_tab_enabled"] is True  # DMs to approvers land there


def test_every_listed_method_exists_in_slack_sdk():
    for method in scopes.METHOD_SCOPES:
        assert callable(getattr(WebClient, method.replace(".", "_"))), method


def test_scope_for_names_the_fix_for_an_unlisted_method():
    assert scopes.scope_for("chat.update") == "chat:write"
    assert scopes.scope_for("views.open") is None
    with pytest.raises(KeyError, match=r"add it there and its scope to manifest\.yml"):
        scopes.scope_for("files.upload")


def web_api_calls(source: str) -> set[str]:
    """Web API methods a source file calls through a WebClient (`client.chat_update(...)`)."""
    found = {m for m in CALL.findall(source) if m in API_METHODS}
    return {m.replace("_", ".") for m in found} | set(API_CALL.findall(source))


def test_web_api_calls_finder():
    source = "self.client.chat_postMessage(x)\nclient.usergroups_users_list(usergroup=g)\n"
    source += 'c.api_call("views.push")\nself.outbox.post(k)\nh.validate_submission(v)\n'
    assert web_api_calls(source) == {"chat.postMessage", "usergroups.users.list", "views.push"}


def test_code_in_bot_calls_only_listed_methods():
    for path in sorted((ROOT / "bot").rglob("*.py")):
        for method in web_api_calls(path.read_text()):
            assert method in scopes.METHOD_SCOPES, (
                f"{path.relative_to(ROOT)} calls {method}: add it to bot/slack/scopes.py "
                "and its scope to manifest.yml"
            )


def test_setup_doc_names_every_setting_and_scope():
    doc = (ROOT / "docs" / "slack-setup.md").read_text()
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "SLACK_API_URL",
                 "DATABASE_URL", "OPSLOOP_WORKFLOWS", "OPSLOOP_CHANNEL", "OPSLOOP_ADMINS",
                 "socket_mode_enabled", *scopes.REQUIRED_SCOPES):  # fmt: skip
        assert f"`{name}`" in doc, name
