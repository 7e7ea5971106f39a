"""OAuth2 clients (RFC 6749 4.4): service accounts that admins register. users owns them,
as it owns every other credential; auth asks VerifyClientCredentials, as it asks
VerifyCredentials for a password, and issues the token.

A client's id is its tokens' `sub`. Deleting a client writes the same revocation marker a
user's deletion does (bulwark_common.revocation), so its tokens stop at api from the next
request, and a `client.deleted` event, so api removes the items it owned."""

from __future__ import annotations

import hmac
import uuid
from typing import Any

import grpc
import redis
from sqlalchemy import select

from bulwark.users.v1 import users_pb2
from bulwark_common import apikeys, revocation
from bulwark_common.db import Database
from bulwark_common.events import CLIENT_DELETED
from bulwark_common.logging import audit
from bulwark_common.rpc import Abort
from bulwark_common.scopes import CLIENT_SCOPES
from bulwark_users.accounts import FieldError, parse_id
from bulwark_users.models import Client, UserEvent, utcnow
from bulwark_users.outbox import Outbox

Code = grpc.StatusCode
MAX_CLIENTS_LISTED = 1000
# Compared against when the client id is unknown, so both failures cost the same.
_NO_HASH = "0" * 64


def client_proto(client: Client) -> Any:
    msg = users_pb2.Client(client_id=client.id, name=client.name, scopes=sorted(client.scopes))
    msg.created_at.FromDatetime(client.created_at)
    return msg


class ClientStore:
    def __init__(
        self, db: Database, redis_client: redis.Redis, prefix: str, outbox: Outbox
    ) -> None:
        self._db = db
        self._redis = redis_client
        self._prefix = prefix
        self._outbox = outbox

    def create(self, request: Any) -> Any:
        name = request.name.strip()
        if not 1 <= len(name) <= 100:
            raise FieldError("name", "must be 1-100 characters")
        scopes = sorted(set(request.scopes))
        if not scopes or not set(scopes) <= CLIENT_SCOPES:
            allowed = ", ".join(sorted(CLIENT_SCOPES))
            raise FieldError("scopes", f"must be one or more of: {allowed}")
        secret = apikeys.new_client_secret()
        client = Client(
            id=str(uuid.uuid4()),
            name=name,
            secret_hash=apikeys.secret_hash(secret),
            scopes=scopes,
            created_at=utcnow(),
            created_by=request.actor_id or None,
        )
        with self._db.transaction() as session:
            session.add(client)
        audit(
            "client.created",
            client_id=client.id,
            scopes=scopes,
            actor_id=request.actor_id or None,
            client_ip=request.client_ip or None,
        )
        return users_pb2.CreatedClient(client=client_proto(client), client_secret=secret)

    def list_clients(self, _request: Any) -> Any:
        with self._db.reads() as session:
            clients = session.scalars(
                select(Client).order_by(Client.created_at, Client.id).limit(MAX_CLIENTS_LISTED)
            ).all()
        return users_pb2.ListClientsResponse(items=[client_proto(c) for c in clients])

    def delete(self, request: Any) -> Any:
        client_id = parse_id(request.client_id)
        if client_id is None:
            raise Abort(Code.NOT_FOUND, "client not found")
        with self._db.transaction() as session:
            client = session.get(Client, client_id, with_for_update=True)
            if client is None:
                raise Abort(Code.NOT_FOUND, "client not found")
            session.delete(client)
            session.add(UserEvent(id=str(uuid.uuid4()), kind=CLIENT_DELETED, user_id=client_id))
            session.flush()
            # Redis down: the deletion rolls back (the caller may retry).
            revocation.revoke_user_tokens(self._redis, self._prefix, client_id)
        # Again after the commit: also voids a token issued while the deletion ran.
        revocation.revoke_user_tokens(self._redis, self._prefix, client_id)
        self._outbox.publish_quietly()
        audit(
            "client.deleted",
            client_id=client_id,
            actor_id=request.actor_id or None,
            client_ip=request.client_ip or None,
        )
        return users_pb2.DeleteClientResponse()

    def verify(self, request: Any) -> Any:
        client_id = parse_id(request.client_id)
        secret: str = request.client_secret
        client = None
        if client_id is not None and len(secret) <= apikeys.MAX_SECRET_LENGTH:
            with self._db.reads() as session:
                client = session.get(Client, client_id)
        stored = client.secret_hash if client is not None else _NO_HASH
        ok = hmac.compare_digest(stored, apikeys.secret_hash(secret)) and client is not None
        if not ok or client is None:
            audit(
                "client.auth_failure",
                client_id=client_id,
                reason="unknown_client" if client is None else "bad_secret",
                client_ip=request.client_ip or None,
            )
            return users_pb2.VerifyClientCredentialsResponse(ok=False)
        return users_pb2.VerifyClientCredentialsResponse(ok=True, client=client_proto(client))
