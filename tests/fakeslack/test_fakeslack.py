from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from slack_bolt import Ack, App, BoltRequest, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler
from slack_sdk.signature import SignatureVerifier

from tests.fakeslack import identity, wire
from tests.fakeslack.server import FakeSlack

JSON = dict[str, Any]
CHANNEL = identity.DEFAULT_CHANNEL_ID


def section(text: str, block_id: str | None = None) -> JSON:
    block: JSON = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    return {**block, "block_id": block_id} if block_id else block


def modal(title: str = "Run experiment") -> JSON:
    return {"type": "modal", "title": {"type": "plain_text", "text": title}, "blocks": [section("Sure?")]}


@pytest.fixture
def client(slack: FakeSlack) -> WebClient:
    return WebClient(token=slack.token, base_url=slack.url, retry_handlers=[])


def api_error(call: Any, **kwargs: Any) -> JSON:
    with pytest.raises(SlackApiError) as caught:
        call(**kwargs)
    return dict(caught.value.response.data)


# -- chat ------------------------------------------------------------------------------------------


def test_post_update_in_place_and_thread_reply(slack: FakeSlack, client: WebClient) -> None:
    posted = client.chat_postMessage(channel=CHANNEL, text="starting", blocks=[section("*Starting*")])
    assert posted["channel"] == CHANNEL and posted["message"]["bot_id"] == identity.BOT_ID
    client.chat_update(channel=CHANNEL, ts=posted["ts"], text="running", blocks=[section("*Running*")])
    reply = client.chat_postMessage(channel=CHANNEL, text="step 1 done", thread_ts=posted["ts"])

    parent, child = slack.messages(CHANNEL)
    assert (parent["ts"], parent["text"], parent["blocks"][0]["text"]["text"]) == (posted["ts"], "running", "*Running*")
    assert parent["edited"]["user"] == identity.BOT_USER_ID and parent["reply_count"] == 1
    assert (child["ts"], child["thread_ts"]) == (reply["ts"], posted["ts"])
    assert slack.replies(CHANNEL, posted["ts"]) == [child]
    assert slack.last("chat.update").params["blocks"] == [section("*Running*")]


def test_update_keeps_blocks_when_omitted_and_unknown_ts_is_not_found(slack: FakeSlack, client: WebClient) -> None:
    ts = client.chat_postMessage(channel=CHANNEL, text="x", blocks=[section("kept")])["ts"]
    client.chat_update(channel=CHANNEL, ts=ts, text="y")
    assert slack.message(CHANNEL, ts)["blocks"] == [section("kept")]
    assert api_error(client.chat_update, channel=CHANNEL, ts="1.000001", text="z")["error"] == "message_not_found"


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_post_argument_errors(client: WebClient) -> None:
    assert api_error(client.chat_postMessage, channel=CHANNEL)["error"] == "no_text"
    assert api_error(client.chat_postMessage, channel="not-a-channel", text="x")["error"] == "channel_not_found"
    assert api_error(client.chat_postMessage, channel=CHANNEL, text="x" * 40_001)["error"] == "msg_too_long"


def test_51_blocks_are_rejected_like_slack(slack: FakeSlack, client: WebClient) -> None:
    blocks = [section(f"line {i}") for i in range(51)]
    data = api_error(client.chat_postMessage, channel=CHANNEL, text="too many", blocks=blocks)
    assert data["error"] == "invalid_blocks"
    assert any("no more than 50 items" in e for e in data["errors"])
    assert data["response_metadata"]["messages"][0].startswith("[ERROR] ")
    assert slack.messages(CHANNEL) == []


def test_bot_must_join_a_channel_before_posting(slack: FakeSlack, client: WebClient) -> None:
    slack.add_channel("C0OUTSIDE", "outside", is_member=False)
    assert api_error(client.chat_postMessage, channel="C0OUTSIDE", text="x")["error"] == "not_in_channel"
    assert client.conversations_join(channel="C0OUTSIDE")["channel"]["is_member"] is True
    assert client.conversations_join(channel="C0OUTSIDE")["warning"] == "already_in_channel"
    assert client.chat_postMessage(channel="#outside", text="x")["channel"] == "C0OUTSIDE"


def test_ephemeral_and_permalink(slack: FakeSlack, client: WebClient) -> None:
    sent = client.chat_postEphemeral(channel=CHANNEL, user=identity.DEFAULT_USER_ID, text="only you")
    assert slack.ephemerals(CHANNEL, identity.DEFAULT_USER_ID)[0]["ts"] == sent["message_ts"]
    assert slack.messages(CHANNEL) == []
    ts = client.chat_postMessage(channel=CHANNEL, text="x")["ts"]
    link = client.chat_getPermalink(channel=CHANNEL, message_ts=ts)["permalink"]
    assert link.endswith(f"/archives/{CHANNEL}/p{ts.replace('.', '')}")


def test_form_encoded_json_strings_are_decoded(slack: FakeSlack) -> None:
    blocks = [section("form")]
    body = f"channel={CHANNEL}&text=x&blocks={urllib.request.quote(json.dumps(blocks))}".encode()
    request = urllib.request.Request(
        f"{slack.url}chat.postMessage", data=body, headers={"Authorization": f"Bearer {slack.token}"}
    )
    with urllib.request.urlopen(request) as response:
        assert json.load(response)["ok"] is True
    assert slack.last("chat.postMessage").params["blocks"] == blocks


def test_get_with_query_token(slack: FakeSlack) -> None:
    with urllib.request.urlopen(f"{slack.url}users.info?token={slack.token}&user={identity.DEFAULT_USER_ID}") as got:
        assert json.load(got)["user"]["name"] == identity.DEFAULT_USER_NAME
    assert slack.last("users.info").params["user"] == identity.DEFAULT_USER_ID


# -- auth, directory ---------------------------------------------------------------------------------


def test_bad_or_missing_token_is_rejected(slack: FakeSlack) -> None:
    bad = WebClient(token="xoxb-wrong", base_url=slack.url)
    assert api_error(bad.chat_postMessage, channel=CHANNEL, text="x")["error"] == "invalid_auth"
    assert api_error(WebClient(base_url=slack.url).auth_test)["error"] == "not_authed"
    assert slack.messages(CHANNEL) == []


def test_directory_methods(slack: FakeSlack, client: WebClient) -> None:
    slack.add_user("U0ADMIN", "alice", is_admin=True)
    slack.set_usergroup("S0SRE", ["U0ADMIN", identity.DEFAULT_USER_ID])
    assert client.users_info(user="U0ADMIN")["user"]["is_admin"] is True
    assert client.usergroups_users_list(usergroup="S0SRE")["users"] == ["U0ADMIN", identity.DEFAULT_USER_ID]
    assert api_error(client.usergroups_users_list, usergroup="S0NONE")["error"] == "no_such_subteam"
    assert client.conversations_info(channel=CHANNEL)["channel"]["name"] == identity.DEFAULT_CHANNEL_NAME
    assert api_error(client.users_info, user="nobody")["error"] == "user_not_found"
    assert client.auth_test()["user_id"] == identity.BOT_USER_ID


def test_strict_mode_only_knows_configured_ids() -> None:
    with FakeSlack(strict=True) as fake:
        strict = WebClient(token=fake.token, base_url=fake.url)
        assert api_error(strict.chat_postMessage, channel="C0UNKNOWN", text="x")["error"] == "channel_not_found"
        assert api_error(strict.users_info, user="U0UNKNOWN")["error"] == "user_not_found"


# -- views -------------------------------------------------------------------------------------------


def test_views_open_valid_then_trigger_cannot_be_reused(slack: FakeSlack, client: WebClient) -> None:
    trigger = wire.trigger_id()
    view = client.views_open(trigger_id=trigger, view={**modal(), "callback_id": "run"})["view"]
    assert view["id"].startswith("V") and view["callback_id"] == "run" and view["state"] == {"values": {}}
    assert slack.view(view["id"])["title"]["text"] == "Run experiment"
    assert api_error(client.views_open, trigger_id=trigger, view=modal())["error"] == "exchanged_trigger_id"


def test_views_open_rejects_invalid_modal_and_expired_trigger(slack: FakeSlack, client: WebClient) -> None:
    data = api_error(client.views_open, trigger_id=wire.trigger_id(), view=modal("A title that is far too long"))
    assert data["error"] == "invalid_arguments"
    assert any("/view/title/text" in e for e in data["errors"])
    expired = wire.trigger_id()
    slack.expire_trigger(expired)
    assert api_error(client.views_open, trigger_id=expired, view=modal())["error"] == "expired_trigger_id"
    assert api_error(client.views_open, trigger_id="", view=modal())["error"] == "invalid_arguments"
    assert slack.views() == []


def test_views_update_by_id_and_external_id(slack: FakeSlack, client: WebClient) -> None:
    opened = client.views_open(trigger_id=wire.trigger_id(), view={**modal(), "external_id": "exp-42"})["view"]
    updated = client.views_update(view_id=opened["id"], view=modal("Running"), hash=opened["hash"])["view"]
    assert updated["id"] == opened["id"] and updated["hash"] != opened["hash"]
    client.views_update(external_id="exp-42", view={**modal("Done"), "external_id": "exp-42"})
    assert slack.view("exp-42")["title"]["text"] == "Done"
    assert api_error(client.views_update, view_id=opened["id"], view=modal(), hash="stale")["error"] == "hash_conflict"
    assert api_error(client.views_update, view_id="V0MISSING", view=modal())["error"] == "not_found"


def test_views_publish_home(slack: FakeSlack, client: WebClient) -> None:
    home = {"type": "home", "blocks": [section("Welcome")]}
    published = client.views_publish(user_id=identity.DEFAULT_USER_ID, view=home)["view"]
    assert slack.home_view(identity.DEFAULT_USER_ID)["id"] == published["id"]
    assert (
        api_error(client.views_publish, user_id=identity.DEFAULT_USER_ID, view=modal())["error"] == "invalid_arguments"
    )


# -- files -------------------------------------------------------------------------------------------


def test_files_upload_v2_end_to_end(slack: FakeSlack, client: WebClient) -> None:
    parent = client.chat_postMessage(channel=CHANNEL, text="report follows")["ts"]
    response = client.files_upload_v2(
        channel=CHANNEL, content="p99,420\n", filename="report.csv", title="Report", thread_ts=parent
    )
    assert response["file"]["title"] == "Report"
    (uploaded,) = slack.files()
    assert uploaded.content == b"p99,420\n" and uploaded.filename == "report.csv"
    assert [c.method for c in slack.calls()][-3:] == [
        "files.getUploadURLExternal",
        FakeSlack.UPLOAD,
        "files.completeUploadExternal",
    ]
    (share,) = slack.replies(CHANNEL, parent)
    assert share["files"][0]["id"] == uploaded.id


def test_complete_upload_of_unknown_file_fails(client: WebClient) -> None:
    data = api_error(client.files_completeUploadExternal, files=[{"id": "F0NOPE", "title": "x"}])
    assert data["error"] == "file_not_found"


# -- fault injection, latency, waiting ---------------------------------------------------------------


def test_rate_limit_fails_without_retry_handler(slack: FakeSlack, client: WebClient) -> None:
    slack.fail_next("chat.postMessage", 429, retry_after=7)
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel=CHANNEL, text="x")
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "7"
    assert caught.value.response["error"] == "ratelimited"


def test_rate_limit_is_retried_with_rate_limit_handler(slack: FakeSlack) -> None:
    retrying = WebClient(token=slack.token, base_url=slack.url, retry_handlers=[RateLimitErrorRetryHandler()])
    slack.fail_next("chat.postMessage", 429, retry_after=1)
    started = time.monotonic()
    assert retrying.chat_postMessage(channel=CHANNEL, text="x")["ok"] is True
    assert time.monotonic() - started >= 1.0
    assert [c.status for c in slack.calls("chat.postMessage")] == [429, 200]
    assert len(slack.messages(CHANNEL)) == 1


def test_server_errors_are_retried_with_server_error_handler(slack: FakeSlack) -> None:
    handler = ServerErrorRetryHandler(max_retry_count=2)
    retrying = WebClient(token=slack.token, base_url=slack.url, retry_handlers=[handler])
    slack.fail_next("chat.postMessage", 500)
    slack.fail_next("chat.postMessage", 503)
    assert retrying.chat_postMessage(channel=CHANNEL, text="x")["ok"] is True
    assert [c.status for c in slack.calls("chat.postMessage")] == [500, 503, 200]


def test_failures_for_any_method_and_plain_api_errors(slack: FakeSlack, client: WebClient) -> None:
    slack.fail_next("*", 200, error="fatal_error", times=2)
    assert api_error(client.auth_test)["error"] == "fatal_error"
    assert api_error(client.chat_postMessage, channel=CHANNEL, text="x")["error"] == "fatal_error"
    assert client.auth_test()["ok"] is True


def test_latency(slack: FakeSlack, client: WebClient) -> None:
    slack.set_latency(0.3, "auth.test")
    started = time.monotonic()
    client.auth_test()
    assert time.monotonic() - started >= 0.3


def test_wait_for_sees_calls_made_after_an_ack(slack: FakeSlack, client: WebClient) -> None:
    def later() -> None:
        time.sleep(0.2)
        client.chat_postMessage(channel=CHANNEL, text="noise")
        client.chat_postMessage(channel=CHANNEL, text="result: ok")

    threading.Thread(target=later).start()
    (call,) = slack.wait_for("chat.postMessage", predicate=lambda c: c.params["text"].startswith("result"))
    assert call.ok and call.response["message"]["text"] == "result: ok"
    with pytest.raises(AssertionError, match="timed out"):
        slack.wait_for("views.open", timeout=0.1)


def test_reset_clears_calls_state_and_failures(slack: FakeSlack, client: WebClient) -> None:
    client.chat_postMessage(channel=CHANNEL, text="x")
    slack.fail_next("auth.test", 500)
    slack.reset()
    assert slack.calls() == [] and slack.messages(CHANNEL) == []
    assert client.auth_test()["ok"] is True


# -- wire formats ------------------------------------------------------------------------------------


def test_signatures_are_accepted_by_slack_sdk_verifier() -> None:
    verifier = SignatureVerifier(identity.SIGNING_SECRET)
    for request in (
        wire.slash_command("run latency checkout"),
        wire.block_action("approve", "exp-1"),
        wire.view_submission("run", {}),
        wire.event_callback(wire.app_home_opened()),
        wire.url_verification("abc"),
    ):
        assert verifier.is_valid_request(request.body, request.headers)
        tampered = request.body.replace(b"a", b"b", 1)
        assert not verifier.is_valid_request(tampered, request.headers)
    stale = wire.slash_command("x", timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(stale.body, stale.headers)


def test_retry_headers() -> None:
    headers = wire.event_callback(wire.app_home_opened(), retry_num=2, retry_reason="http_error").headers
    assert (headers["X-Slack-Retry-Num"], headers["X-Slack-Retry-Reason"]) == ("2", "http_error")


def test_slash_command_has_every_field() -> None:
    form = wire.slash_command("run", "U0X", trigger="1.2.abc").payload()
    assert set(form) >= {
        "token", "team_id", "team_domain", "channel_id", "channel_name", "user_id", "user_name",
        "command", "text", "api_app_id", "response_url", "trigger_id",
    }  # fmt: skip
    assert (form["command"], form["text"], form["user_id"], form["trigger_id"]) == ("/chaos", "run", "U0X", "1.2.abc")


def test_block_action_finds_block_id_and_text_in_the_message() -> None:
    approve = {"type": "button", "action_id": "approve", "value": "exp-1", "text": {"type": "plain_text", "text": "OK"}}
    message = {"ts": "1.000001", "blocks": [{"type": "actions", "block_id": "ctl", "elements": [approve]}]}
    payload = wire.block_action("approve", user_id="U0X", message=message).payload()
    (action,) = payload["actions"]
    assert (action["block_id"], action["value"], action["text"]["text"]) == ("ctl", "exp-1", "OK")
    assert payload["container"] == {
        "type": "message",
        "message_ts": "1.000001",
        "channel_id": CHANNEL,
        "is_ephemeral": False,
    }


def test_response_url_posts_are_recorded(slack: FakeSlack) -> None:
    body = json.dumps({"text": "done", "replace_original": True}).encode()
    status, headers, reply = wire.post(slack.response_url(), body, {"Content-Type": "application/json"})
    assert (status, json.loads(reply)) == (200, {"ok": True})
    assert headers["content-type"].startswith("application/json")
    assert slack.last(FakeSlack.RESPONSE_URL).params["replace_original"] is True


class _BoltHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        request = BoltRequest(body=body, headers={k: v for k, v in self.headers.items()})
        response = self.server.app.dispatch(request)  # type: ignore[attr-defined]
        self.send_response(response.status)
        for name, values in response.headers.items():
            for value in values:
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def bolt_url(slack: FakeSlack) -> Iterator[tuple[str, list[JSON]]]:
    """A real Bolt app over HTTP, talking to the fake; yields (url, what its listeners saw)."""
    seen: list[JSON] = []
    app = App(
        client=WebClient(token=slack.token, base_url=slack.url),
        signing_secret=identity.SIGNING_SECRET,
        process_before_response=True,
    )

    @app.command("/chaos")
    def command(ack: Ack, command: JSON, respond: Respond) -> None:
        ack()
        seen.append(command)
        respond(text=f"ran {command['text']}")

    @app.action("approve")
    def approve(ack: Ack, body: JSON) -> None:
        ack()
        seen.append(body)

    @app.view("run")
    def submit(ack: Ack, view: JSON) -> None:
        ack()
        seen.append(view)

    @app.event("app_home_opened")
    def home(event: JSON, client: WebClient) -> None:
        client.views_publish(user_id=event["user"], view={"type": "home", "blocks": [section("hi")]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), _BoltHandler)
    server.app = app  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/slack/events", seen
    server.shutdown()
    server.server_close()


def test_bolt_accepts_every_wire_format(slack: FakeSlack, bolt_url: tuple[str, list[JSON]]) -> None:
    url, seen = bolt_url
    assert slack.calls("auth.test"), "Bolt verified its token against the fake"

    assert wire.post(url, *wire.slash_command("latency", response_url=slack.response_url()))[0] == 200
    assert slack.last(FakeSlack.RESPONSE_URL).params["text"] == "ran latency"

    assert wire.post(url, *wire.block_action("approve", "exp-1"))[0] == 200
    assert seen[-1]["actions"][0]["value"] == "exp-1"

    values = {"target": {"svc": wire.text_value("checkout")}, "when": {"d": wire.date_value("2025-01-31")}}
    assert wire.post(url, *wire.view_submission("run", values, private_metadata="exp-1"))[0] == 200
    assert seen[-1]["state"]["values"]["target"]["svc"]["value"] == "checkout"
    assert seen[-1]["private_metadata"] == "exp-1"

    assert wire.post(url, *wire.event_callback(wire.app_home_opened("U0HOME")))[0] == 200
    assert slack.home_view("U0HOME") is not None

    status, _, body = wire.post(url, *wire.url_verification("ch4llenge"))
    assert (status, json.loads(body)) == (200, {"challenge": "ch4llenge"})

    forged = wire.slash_command("latency", secret="not-the-secret")
    assert wire.post(url, *forged)[0] == 401
