"""The items resource: owned by the caller, visible to its owner and to admins only."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import Integer, Select, and_, bindparam, insert, or_, select

from bulwark_api.db import Item
from bulwark_api.deps import BackendsDep, backends_of, require_scope
from bulwark_api.jsonout import json_response
from bulwark_api.problems import Problem, problem_responses
from bulwark_api.schemas import ItemCreate, ItemList, ItemOut, ItemUpdate
from bulwark_api.tokens import Claims
from bulwark_common.scopes import ITEMS_ADMIN, ITEMS_READ, ITEMS_WRITE

router = APIRouter(tags=["items"])

# The caller's claims, checked for the scope the route needs (403 naming it otherwise).
Reader = Annotated[Claims, require_scope(ITEMS_READ)]
Writer = Annotated[Claims, require_scope(ITEMS_WRITE)]
NOT_FOUND = "item not found"
# Reads and the create are prebuilt Core statements run by backends.statements
# (statements.py): one round trip each.
ITEMS = Item.__table__


class ItemRow(Protocol):
    """An ORM Item or a Core row of the items table."""

    id: str
    name: str
    description: str | None
    owner_id: str
    created_at: datetime
    updated_at: datetime


def item_out(item: ItemRow) -> ItemOut:
    return ItemOut(
        id=item.id,
        name=item.name,
        description=item.description,
        owner_id=item.owner_id,
        created_at=_utc(item.created_at),
        updated_at=_utc(item.updated_at),
    )


def _utc(ts: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _item(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row of the items table as ItemOut's JSON fields (datetimes as UTC)."""
    return {f: row[f] for f in _ITEM_FIELDS}


def _encode_cursor(item: Mapping[str, Any]) -> str:
    raw = json.dumps([_utc(item["created_at"]).isoformat(), item["id"]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, item_id = json.loads(raw)
        return datetime.fromisoformat(created), str(uuid.UUID(item_id))
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise Problem(422, "cursor: not a cursor this API returned") from None


# Built once with bound parameters: the hot read pays no clause construction or cache-key
# computation per request.
_ANY = ITEMS.c.id == bindparam("id")
_OWN = and_(_ANY, ITEMS.c.owner_id == bindparam("owner"))
_READ_ANY = select(ITEMS).where(_ANY)
_READ_OWN = select(ITEMS).where(_OWN)
_ITEM_FIELDS = tuple(ItemOut.model_fields)
_INSERT = insert(Item)


def _page(all: bool, after_cursor: bool) -> Select[Any]:
    """One keyset page, newest first: the owner's items (or every owner's), optionally after
    a cursor. Rows inserted meanwhile are newer and never shift later pages."""
    query = select(ITEMS)
    if not all:
        query = query.where(ITEMS.c.owner_id == bindparam("owner"))
    if after_cursor:
        created = bindparam("c_created", type_=ITEMS.c.created_at.type)
        item_id = bindparam("c_id", type_=ITEMS.c.id.type)
        query = query.where(
            or_(
                ITEMS.c.created_at < created,
                and_(ITEMS.c.created_at == created, ITEMS.c.id < item_id),
            )
        )
    order = query.order_by(ITEMS.c.created_at.desc(), ITEMS.c.id.desc())
    return order.limit(bindparam("limit", type_=Integer))


_PAGES = {(a, c): _page(a, c) for a in (False, True) for c in (False, True)}


def _visible(claims: Claims, item_id: uuid.UUID) -> tuple[Any, Any, dict[str, str]]:
    """The one rule: the caller may touch its own items, an admin with items:admin any.
    Returns the WHERE clause, the prebuilt read with it, and their parameters."""
    if claims.may(ITEMS_ADMIN):
        return _ANY, _READ_ANY, {"id": str(item_id)}
    return _OWN, _READ_OWN, {"id": str(item_id), "owner": claims.sub}


@router.post(
    "/v1/items",
    status_code=201,
    response_model=ItemOut,
    responses=problem_responses(400, 401, 403, 413, 422, 429, 503),
)
async def create_item(
    body: ItemCreate, claims: Writer, request: Request, response: Response
) -> Response:
    now = datetime.now(UTC)
    item = {
        "id": str(uuid.uuid4()),
        "owner_id": claims.sub,
        "name": body.name,
        "description": body.description,
        "created_at": now,
        "updated_at": now,
    }
    # One INSERT is atomic on its own: autocommit spares the BEGIN and COMMIT round trips
    # and the ORM's unit of work (the session stays for multi-statement writes).
    await backends_of(request).statements.execute(_INSERT, item)
    out = json_response(_item(item), response, 201)
    out.headers["Location"] = f"/v1/items/{item['id']}"
    return out


@router.get(
    "/v1/items",
    response_model=ItemList,
    responses=problem_responses(401, 403, 422, 429, 503),
)
async def list_items(
    claims: Reader,
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    owner: Annotated[uuid.UUID | None, Query(description="admins with items:admin")] = None,
    all: Annotated[bool, Query(description="admins with items:admin: every owner's")] = False,
) -> Response:
    if (owner is not None or all) and not claims.may(ITEMS_ADMIN):
        raise Problem(
            403, "owner and all need the admin role and the scope items:admin", scope=ITEMS_ADMIN
        )
    backends = backends_of(request)
    params: dict[str, Any] = {"limit": limit + 1}
    if not all:
        params["owner"] = str(owner) if owner else claims.sub
    if cursor:
        params["c_created"], params["c_id"] = _decode_cursor(cursor)
    rows = await backends.statements.all(_PAGES[(all, bool(cursor))], params)
    page, more = rows[:limit], len(rows) > limit
    body = {
        "items": [_item(r) for r in page],
        "next_cursor": _encode_cursor(page[-1]) if more else None,
    }
    return json_response(body, response)


@router.get(
    "/v1/items/{item_id}",
    response_model=ItemOut,
    responses=problem_responses(401, 403, 404, 422, 429, 503),
)
async def get_item(
    item_id: uuid.UUID, claims: Reader, request: Request, response: Response
) -> Response:
    _, read, params = _visible(claims, item_id)
    item = await backends_of(request).statements.one(read, params)
    if item is None:
        raise Problem(404, NOT_FOUND)
    return json_response(_item(item), response)


@router.patch(
    "/v1/items/{item_id}",
    response_model=ItemOut,
    responses=problem_responses(400, 401, 403, 404, 413, 422, 429, 503),
)
async def update_item(
    item_id: uuid.UUID, body: ItemUpdate, claims: Writer, backends: BackendsDep
) -> ItemOut:
    changes = body.model_dump(exclude_unset=True)
    where, _, params = _visible(claims, item_id)
    async with backends.sessions.begin() as session:
        item = await session.scalar(select(Item).where(where).with_for_update(), params)
        if item is None:
            raise Problem(404, NOT_FOUND)
        for field, value in changes.items():
            setattr(item, field, value)
        if changes:
            item.updated_at = datetime.now(UTC)
    return item_out(item)


@router.delete(
    "/v1/items/{item_id}",
    status_code=204,
    responses=problem_responses(401, 403, 404, 422, 429, 503),
)
async def delete_item(
    item_id: uuid.UUID, claims: Writer, backends: BackendsDep, response: Response
) -> Response:
    where, _, params = _visible(claims, item_id)
    async with backends.sessions.begin() as session:
        item = await session.scalar(select(Item).where(where), params)
        if item is None:
            raise Problem(404, NOT_FOUND)
        await session.delete(item)
    out = Response(status_code=204)
    out.headers.raw.extend(response.headers.raw)
    return out
