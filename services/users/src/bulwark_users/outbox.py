"""The transactional outbox: events are written in the same transaction as the change they
describe (see DeleteUser), then relayed to the Redis stream. A crash or a Redis outage
between the two only delays them: unpublished rows are retried every second."""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from sqlalchemy import select, update

from bulwark_common import events
from bulwark_common.db import Database
from bulwark_users.models import UserEvent, utcnow

log = logging.getLogger("bulwark.users.outbox")
BATCH = 100


class Outbox:
    def __init__(self, db: Database, redis_client: redis.Redis, prefix: str) -> None:
        self._db = db
        self._redis = redis_client
        self._stream = events.user_events_key(prefix)
        self._lock = threading.Lock()  # one relay at a time keeps the stream in order
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish(self) -> int:
        """Relay what is pending; the number relayed. A row is marked published only after
        Redis took it, so a crash in between publishes it twice (consumers are idempotent)."""
        relayed = 0
        with self._lock:
            while True:
                with self._db.transaction() as session:
                    rows = session.scalars(
                        select(UserEvent)
                        .where(UserEvent.published_at.is_(None))
                        .order_by(UserEvent.id)
                        .limit(BATCH)
                    ).all()
                    if not rows:
                        return relayed
                    pipe = self._redis.pipeline(transaction=False)
                    for row in rows:
                        fields: dict[Any, Any] = {
                            "kind": row.kind,
                            "user_id": row.user_id,
                            "event_id": row.id,
                        }
                        pipe.xadd(self._stream, fields, maxlen=events.STREAM_MAXLEN)
                    pipe.execute()
                    session.execute(
                        update(UserEvent)
                        .where(UserEvent.id.in_([r.id for r in rows]))
                        .values(published_at=utcnow())
                    )
                relayed += len(rows)

    def publish_quietly(self) -> None:
        try:
            self.publish()
        except Exception as exc:  # retried by the relay thread
            log.warning("outbox relay failed", extra={"error": type(exc).__name__})

    def start(self, interval: float = 1.0) -> None:
        """Relay in the background for the life of the process (idempotent)."""
        if self._thread is not None:
            return
        stop = self._stop

        def run() -> None:
            while not stop.wait(interval):
                self.publish_quietly()

        self._thread = threading.Thread(target=run, name="outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the relay (what is still pending waits for the next start)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
