"""The Web API client, the Slack Surface over it, and user-group membership for the role directory."""

from __future__ import annotations

import logging
import random
from typing import Any

from opentelemetry.trace import SpanKind
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.jitter import Jitter
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web import SlackResponse

from bot import pools
from bot.interface.kit import Message
from bot.interface.outbox import PASSING
from bot.interface.render import SLACK, Renderer
from bot.interface.surface import DeliveryFailed
from bot.observability import SLACK_API_ERRORS, SLACK_API_RETRIES
from bot.tracing import span

log = logging.getLogger(__name__)


class _CountsRetries:
    """Counts each retry slack_sdk decides to make, by reason, for /metrics; waits before it with
    ``bot.pools.sleep``, so a task waiting out Slack gives its turn to another."""

    reason = "unknown"

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        retry = super()._can_retry(state=state, request=request, response=response, error=error)  # type: ignore[misc]  # mixin over a RetryHandler
        if retry:
            SLACK_API_RETRIES.labels(self.reason).inc()
        return bool(retry)

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        pools.sleep(self._wait(state, response))
        state.increment_current_attempt()

    def _wait(self, state: RetryState, response: HttpResponse | None) -> float:
        return float(self.interval_calculator.calculate_sleep_duration(state.current_attempt))  # type: ignore[attr-defined]  # a RetryHandler's


class _CountingRateLimitHandler(_CountsRetries, RateLimitErrorRetryHandler):
    reason = "ratelimited"

    def _wait(self, state: RetryState, response: HttpResponse | None) -> float:
        """Slack's ``Retry-After``, never less, plus a little jitter so the waiting calls do not return at once."""
        headers = {key.lower(): values for key, values in (response.headers if response else {}).items()}
        try:
            retry_after = float(headers["retry-after"][0])
        except (KeyError, IndexError, TypeError, ValueError):
            retry_after = 1.0
        return retry_after + random.uniform(0.0, 0.25)


class _CountingServerErrorHandler(_CountsRetries, ServerErrorRetryHandler):
    reason = "server_error"


class _CountingConnectionErrorHandler(_CountsRetries, ConnectionErrorRetryHandler):
    reason = "connection_error"


class _ScaledJitter(Jitter):
    """Up to twice the first back-off at random (slack_sdk's default adds up to 1 s to its 0.5 s)."""

    def __init__(self, first_backoff: float) -> None:
        self.most = 2 * first_backoff

    def recalculate(self, duration: float) -> float:
        return duration + random.uniform(0.0, self.most)


class TracedWebClient(WebClient):
    """Every Web API call is a span ``slack.<method>``, its retries inside it. The span holds the method, the
    HTTP status and Slack's error code: never the token, a channel's messages or what was sent."""

    def api_call(
        self,
        api_method: str,
        *,
        http_verb: str = "POST",
        files: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> SlackResponse:
        with span(f"slack.{api_method}", kind=SpanKind.CLIENT, attributes={"slack.method": api_method}) as calling:
            try:
                response = super().api_call(
                    api_method,
                    http_verb=http_verb,
                    files=files,
                    data=data,
                    params=params,
                    json=json,
                    headers=headers,
                    auth=auth,
                )
            except SlackApiError as exc:
                calling.set_attribute("http.response.status_code", exc.response.status_code)
                calling.set_attribute("slack.error", str(exc.response.get("error", "unknown")))
                raise
            calling.set_attribute("http.response.status_code", response.status_code)
            return response


def web_client(token: str, base_url: str, *, retry_backoff: float = 0.5) -> WebClient:
    """slack_sdk retries only connection errors by default; add 429 Retry-After and 5xx retries. A 5xx or a
    connection error is retried after ``retry_backoff`` seconds, then twice that, each with jitter."""
    backoff = BackoffRetryIntervalCalculator(backoff_factor=retry_backoff, jitter=_ScaledJitter(retry_backoff))
    return TracedWebClient(
        token=token,
        base_url=base_url,
        timeout=10,
        retry_handlers=[
            _CountingConnectionErrorHandler(max_retry_count=2, interval_calculator=backoff),
            _CountingRateLimitHandler(max_retry_count=3),
            _CountingServerErrorHandler(max_retry_count=2, interval_calculator=backoff),
        ],
    )


def _counted(method: str, error: SlackApiError) -> DeliveryFailed:
    reason = str(error.response.get("error", "unknown"))
    SLACK_API_ERRORS.labels(method, reason).inc()
    return DeliveryFailed(reason, _retry_after(error))


def _retry_after(error: SlackApiError) -> float | None:
    headers = {str(k).lower(): v for k, v in (error.response.headers or {}).items()}
    try:
        return float(headers["retry-after"])
    except (KeyError, TypeError, ValueError):
        return None


class SlackSurface:
    """The Surface handlers talk to, over the Web API."""

    renderer: Renderer = SLACK

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def ephemeral(self, channel: str | None, user: str, message: Message) -> None:
        if channel:
            try:
                self.client.chat_postEphemeral(channel=channel, user=user, text=message.text, blocks=message.blocks)
                return
            except SlackApiError as exc:
                failed = _counted("chat.postEphemeral", exc)
                if failed.reason in PASSING:  # a direct message now would meet the same outage
                    raise failed from exc
                # Not in that channel (or a DM with someone else): fall back to a direct message.
        try:
            self.client.chat_postMessage(channel=user, text=message.text, blocks=message.blocks)
        except SlackApiError as exc:
            raise _counted("chat.postMessage", exc) from exc

    def post(self, channel: str, message: Message, *, thread_ts: str | None = None) -> tuple[str, str]:
        try:
            response = self.client.chat_postMessage(
                channel=channel, text=message.text, blocks=message.blocks, thread_ts=thread_ts
            )
        except SlackApiError as exc:
            raise _counted("chat.postMessage", exc) from exc
        return str(response["channel"]), str(response["ts"])

    def update(self, channel: str, ts: str, message: Message) -> None:
        try:
            self.client.chat_update(channel=channel, ts=ts, text=message.text, blocks=message.blocks)
        except SlackApiError as exc:
            raise _counted("chat.update", exc) from exc

    def open_modal(self, trigger_id: str, view: dict[str, Any]) -> None:
        try:
            self.client.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as exc:
            raise _counted("views.open", exc) from exc

    def publish_home(self, user: str, view: dict[str, Any]) -> None:
        try:
            self.client.views_publish(user_id=user, view=view)
        except SlackApiError as exc:
            raise _counted("views.publish", exc) from exc


class SlackGroups:
    """Members of a user group, read from Slack each call (``RoleDirectory`` caches them, outside any
    transaction). A failed read raises: an empty answer would silently take everyone's group roles away."""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def __call__(self, group_id: str) -> frozenset[str]:
        try:
            return frozenset(self.client.usergroups_users_list(usergroup=group_id).get("users", []))
        except SlackApiError as exc:
            raise _counted("usergroups.users.list", exc) from exc
