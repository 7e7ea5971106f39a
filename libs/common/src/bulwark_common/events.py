"""Events between services over a Redis stream: the contract users (producer, from its
transactional outbox) and api (consumer group) share.

`<prefix>events:users` entries carry `kind` ("user.deleted", or "client.deleted" for an OAuth2
client, whose id then stands in `user_id`: both own items), `user_id` and `event_id` (the
outbox row id). Delivery is at least once: consumers must be idempotent."""

from __future__ import annotations

USER_DELETED = "user.deleted"
CLIENT_DELETED = "client.deleted"
CONSUMER_GROUP = "api"
# Entries kept in the stream (approximate trim): far more than a consumer ever lags behind.
STREAM_MAXLEN = 100_000


def user_events_key(prefix: str) -> str:
    return f"{prefix}events:users"
