"""Messages that the chat platform could not take yet (down, 5xx, 429 after the client's own retries) wait
here and are delivered later, in order per destination (a channel, or one run's thread).

A message is sent at once on the caller's thread when nothing waits before it for the same destination;
otherwise, or when that first try fails for a passing reason, it queues behind the others. One sender
thread retries the head of each queue with backoff, honouring ``Retry-After``: a refusal of the platform's
(429, 5xx, unreachable) holds every line back, ``message_pending`` (one run's message still being posted by
another replica) only its own. The outbox is bounded: when full, the oldest waiting message is dropped
(logged and counted), never the caller blocked. A refusal that retrying cannot fix (``not_in_channel``,
``invalid_blocks``...) is logged and dropped at once. After ``close`` the outbox refuses new messages
(``send`` returns False, logged) and starts no sender.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from bot.interface.surface import DeliveryFailed
from bot.tracing import carried

log = logging.getLogger(__name__)

LIMIT = 500  # messages waiting, all destinations together
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 30.0
GIVE_UP_AFTER = 3600.0  # a message older than this is dropped rather than posted out of its time
MESSAGE_PENDING = "message_pending"  # ours: a run's message is being posted by another replica, update it after
PASSING = frozenset(
    {"ratelimited", "internal_error", "service_unavailable", "fatal_error", "request_timeout", MESSAGE_PENDING}
)
ONE_LINE = frozenset({MESSAGE_PENDING})  # passing refusals about one destination, not the platform


@dataclass(frozen=True)
class _Retry:
    after: float  # seconds the platform asked for (Retry-After), 0 when it did not say
    platform: bool  # the platform is refusing (every line waits), or only this line must


@dataclass
class _Letter:
    deliver: Callable[[], None]
    what: str
    queued_at: float
    begun: bool = False  # being tried by the sender now: what it sends may already be read


class Outbox:
    def __init__(
        self,
        *,
        limit: int = LIMIT,
        monotonic: Callable[[], float] = time.monotonic,
        give_up_after: float = GIVE_UP_AFTER,
        first_backoff: float = FIRST_BACKOFF,
    ) -> None:
        self.limit = limit
        self.first_backoff = first_backoff
        self.monotonic = monotonic
        self.give_up_after = give_up_after
        self.dropped = 0
        self._queues: OrderedDict[str, deque[_Letter]] = OrderedDict()
        self._busy: set[str] = set()  # destinations with a send under way on a caller's thread
        self._wake = threading.Condition()
        self._closed = False
        self._sender: threading.Thread | None = None
        self._backoff = first_backoff
        self._not_before = 0.0
        self._held: dict[str, tuple[float, float]] = {}  # destination -> (not before, its next back-off)

    def waits_for(self, destination: str) -> bool:
        """Whether a letter for ``destination`` waits that has not begun. One the sender is trying now may have
        read what it sends already, so it does not count: a change after it would otherwise never be sent."""
        with self._wake:
            return any(not letter.begun for letter in self._queues.get(destination, ()))

    @property
    def waiting(self) -> int:
        with self._wake:
            return sum(len(queue) for queue in self._queues.values())

    def send(self, destination: str, deliver: Callable[[], None], what: str = "message") -> bool:
        """Deliver now, or queue it behind what waits for ``destination``; never raises for a passing outage.

        False, logged, when the outbox is closed: nothing is queued and no sender starts after ``close``."""
        letter = _Letter(carried(deliver), what, self.monotonic())  # traced where it was sent, on whichever thread
        with self._wake:
            if self._closed:
                log.warning("the outbox is closed: refused a %s for %s", what, destination)
                return False
            if self._queues.get(destination) or destination in self._busy:
                self._enqueue(destination, letter)
                return True
            self._busy.add(destination)
        outcome: _Retry | None = None
        try:
            outcome = _attempt(letter)
        finally:
            self._tried(destination, letter, outcome)
        return True

    def queue(self, destination: str, deliver: Callable[[], None], what: str = "message") -> bool:
        """Like ``send``, but never tried on the caller's thread: for a caller that waits for the delivery
        with a bound of its own. It is tried now, not after the back-off of earlier failures: a caller waiting
        for it is the best moment to find out whether the platform is back. False, logged, after ``close``."""
        with self._wake:
            if self._closed:
                log.warning("the outbox is closed: refused a %s for %s", what, destination)
                return False
            self._not_before = 0.0
            self._held.pop(destination, None)
            self._enqueue(destination, _Letter(carried(deliver), what, self.monotonic()))
        return True

    def _tried(self, destination: str, letter: _Letter, outcome: _Retry | None) -> None:
        """After a first try on the caller's thread: a passing failure waits first in its line."""
        with self._wake:
            self._busy.discard(destination)
            if outcome is not None and self._closed:  # closed while it was being tried: nobody retries it
                log.error("chaosbot stopped with a %s for %s undelivered", letter.what, destination)
            elif outcome is not None:
                self._queues.setdefault(destination, deque()).appendleft(letter)  # first in its line
                self._trim()
                self._delay(destination, outcome)
            self._kick()

    def close(self, *, deadline_seconds: float = 3.0) -> None:
        """Try what waits until ``deadline_seconds``, then stop; what is left is logged as lost."""
        with self._wake:
            self._closed = True
            self._not_before = 0.0
            self._held.clear()
            self._wake.notify_all()
        if self._sender is not None:
            self._sender.join(timeout=deadline_seconds)
        with self._wake:
            left = sum(len(queue) for queue in self._queues.values())
            self._queues.clear()
            self._wake.notify_all()
        if left:
            log.error("chaosbot stopped with %d chat message(s) undelivered", left)

    # -- the sender thread -------------------------------------------------------------------------------

    def _enqueue(self, destination: str, letter: _Letter) -> None:
        self._queues.setdefault(destination, deque()).append(letter)
        self._trim()
        self._kick()

    def _trim(self) -> None:
        while sum(len(queue) for queue in self._queues.values()) > self.limit:
            destination, queue = next(iter(self._queues.items()))
            lost = queue.popleft()
            self.dropped += 1
            log.error("outbox full: dropped an undelivered %s for %s", lost.what, destination)
            if not queue:
                del self._queues[destination]
                self._held.pop(destination, None)

    def _delay(self, destination: str, retry: _Retry) -> None:
        now = self.monotonic()
        if retry.platform:
            self._not_before = now + max(retry.after, self._backoff)
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            return
        backoff = self._held.get(destination, (0.0, self.first_backoff))[1]
        self._held[destination] = (now + max(retry.after, backoff), min(backoff * 2, MAX_BACKOFF))

    def _kick(self) -> None:
        if not self._queues:
            return
        if self._closed:  # the sender under way drains until close's deadline; none starts after it
            self._wake.notify_all()
            return
        if self._sender is None or not self._sender.is_alive():
            self._sender = threading.Thread(target=self._drain, name="chaosbot-outbox", daemon=True)
            self._sender.start()
        self._wake.notify_all()

    def _drain(self) -> None:
        while True:
            with self._wake:
                head = self._next_head()
                while head is None:
                    if not self._queues:
                        self._sender = None  # the next message starts a new sender
                        return
                    self._wake.wait(timeout=max(0.05, self._next_try_at() - self.monotonic()))
                    head = self._next_head()
                destination, letter = head
                self._busy.add(destination)
                letter.begun = True
            outcome = _attempt(letter) if not self._too_old(letter) else None
            with self._wake:
                self._busy.discard(destination)
                letter.begun = False
                queue = self._queues.get(destination)
                if outcome is None:
                    self._backoff = self.first_backoff
                    self._held.pop(destination, None)
                    if queue and queue[0] is letter:
                        queue.popleft()
                    if queue is not None and not queue:
                        del self._queues[destination]
                else:
                    self._delay(destination, outcome)

    def _too_old(self, letter: _Letter) -> bool:
        if self.monotonic() - letter.queued_at < self.give_up_after:
            return False
        self.dropped += 1
        log.error("gave up on a %s undelivered for %.0f s", letter.what, self.give_up_after)
        return True

    def _next_try_at(self) -> float:
        """When a line may be tried next: after the platform's back-off, else its earliest held line."""
        if self.monotonic() < self._not_before:
            return self._not_before
        return min((until for until, _ in self._held.values()), default=0.0)

    def _next_head(self) -> tuple[str, _Letter] | None:
        now = self.monotonic()
        if now < self._not_before:
            return None
        for destination, queue in self._queues.items():
            if queue and destination not in self._busy and self._held.get(destination, (0.0, 0.0))[0] <= now:
                self._queues.move_to_end(destination)  # round robin between destinations
                return destination, queue[0]
        return None


def _attempt(letter: _Letter) -> _Retry | None:
    """Deliver; None when done (or dropped for good), else when and how widely to wait before the next try."""
    try:
        letter.deliver()
        return None
    except DeliveryFailed as exc:
        if exc.reason not in PASSING:
            log.error("the chat platform refused a %s for good (%s): dropped", letter.what, exc.reason)
            return None
        return _Retry(float(exc.retry_after or 0.0), platform=exc.reason not in ONE_LINE)
    except Exception:  # connection refused, timeouts: the platform is unreachable for now
        log.warning("could not deliver a %s yet; it waits in the outbox", letter.what, exc_info=True)
        return _Retry(0.0, platform=True)
