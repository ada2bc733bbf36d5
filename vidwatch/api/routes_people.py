"""The people library over HTTP (``vidwatch.library``), JSON or pages on the same paths:

- ``POST /people`` (multipart: ``name``, one or more ``photo`` files, JPEG or PNG) -> 201
  ``{id, name, faces}``; 422 ``no_face``, ``several_faces``, ``not_an_image`` (naming the
  photo, nothing stored), ``invalid_name``; 503 ``enrolment_unavailable`` without the face
  models (the daemon hands the API the photo reader of the models it loaded).
- ``GET /people`` -> ``{people: [{id, name, jobs, appearances, thumbnail}], next}``, newest
  first, paged like ``/jobs`` (``before``, ``limit``).
- ``GET /people/{id}`` -> ``{id, name, thumbnail, appearances: [{job_id, file_name,
  person, scenes, first_s, last_s, thumbnail}]}``.
- ``PATCH /people/{id}`` ``{"name": ...}``; ``POST /people/{id}/merge`` ``{"from": id}``;
  ``DELETE /people/{id}`` -> 204. Unknown ids 404, malformed ones 422.

A request that prefers ``text/html`` (a browser) gets the page instead; an explicit
``Accept: application/json`` always gets JSON. The pages' forms post to the same routes
(form-encoded: answered with a redirect) and to ``/people/{id}/rename`` and
``/people/{id}/forget``. With FACE_LIBRARY=false every route answers 404
``library_disabled``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from vidwatch.api.context import ApiContext, Ctx
from vidwatch.api.errors import ApiError, documented, store_unavailable
from vidwatch.api.links import request_base_url
from vidwatch.api.negotiate import wants_html
from vidwatch.catalog.query import LIMIT_DEFAULT as LIST_DEFAULT
from vidwatch.catalog.query import LIMIT_MAX as LIST_MAX
from vidwatch.library import InvalidName, PeopleLibrary, Person, PersonNotFound
from vidwatch.library import keys as lkeys
from vidwatch.library.photos import PhotoError, enrolment_faces
from vidwatch.r2.store import StoreError

router = APIRouter()

MAX_PHOTOS = 20
MAX_PHOTO_BYTES = 25 * 1024 * 1024
NAME_FIELD, PHOTO_FIELD = "name", "photo"


# --- shared -------------------------------------------------------------------------------------
def _is_form(request: Request) -> bool:
    kind = request.headers.get("content-type", "").lower()
    return kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))


def library_of(ctx: ApiContext) -> PeopleLibrary:
    if ctx.library is None:
        raise ApiError(404, "library_disabled", "the people library is off (FACE_LIBRARY=false)")
    return ctx.library


async def valid_person_id(person_id: str) -> str:
    normalised = lkeys.normalize_person_id(person_id)
    if normalised is None:
        raise ApiError(
            422,
            "invalid_person_id",
            f"{person_id[:40]!r} is not a library person id (P and a 26-character ULID)",
        )
    return normalised


PersonId = Annotated[str, Depends(valid_person_id)]


async def _call(fn: Any, *args: Any) -> Any:
    """A library call in a worker thread, its errors as the API's."""
    try:
        return await anyio.to_thread.run_sync(fn, *args)
    except PersonNotFound as exc:
        raise ApiError(404, "person_not_found", str(exc)) from None
    except InvalidName as exc:
        raise ApiError(422, "invalid_name", str(exc)) from None
    except StoreError as exc:
        raise store_unavailable(exc) from None


def _signed(ctx: ApiContext, request: Request, key: Any) -> str | None:
    if not isinstance(key, str):
        return None
    with request_base_url(ctx.base_url(request)):
        return ctx.store.signed_url(key, ctx.settings.r2_url_ttl_seconds)


def summary(ctx: ApiContext, request: Request, person: Person) -> dict[str, Any]:
    return {
        "id": person.id,
        "name": person.name,
        "jobs": len(person.job_ids),
        "appearances": len(person.appearances),
        "thumbnail": _signed(ctx, request, person.thumbnail),
        "created_at": person.created_at,
    }


def detail(ctx: ApiContext, request: Request, person: Person) -> dict[str, Any]:
    appearances = sorted(
        person.appearances,
        key=lambda a: (str(a.get("job_id")), int(a.get("person") or 0)),
        reverse=True,
    )
    return {
        **summary(ctx, request, person),
        "appearances": [
            {
                "job_id": a.get("job_id"),
                "file_name": a.get("file_name"),
                "person": a.get("person"),
                "scenes": a.get("scenes") or [],
                "first_s": a.get("first_s"),
                "last_s": a.get("last_s"),
                "faces": a.get("faces"),
                "thumbnail": _signed(ctx, request, a.get("thumbnail")),
            }
            for a in appearances
        ],
    }


def _json(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        body, status_code=status_code, headers={"Cache-Control": "no-store", **(headers or {})}
    )


# --- enrol ---------------------------------------------------------------------------------------
_ENROL_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [NAME_FIELD, PHOTO_FIELD],
                    "properties": {
                        NAME_FIELD: {"type": "string", "description": "the person's name"},
                        PHOTO_FIELD: {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "one or more JPEG or PNG photos, one face each",
                        },
                    },
                }
            }
        },
    }
}


def _page_error(exc: ApiError) -> Response:
    """A refused form of the pages, as a page (a browser shows it) with the same status."""
    from vidwatch.api.page_html import html
    from vidwatch.report.render import render_error

    return html(render_error("Not done", f"{exc.message} ({exc.code})"), exc.http_status)


@router.post(
    "/people",
    status_code=201,
    openapi_extra=_ENROL_BODY,
    summary="Enrol a person from photos",
    responses={201: {"description": "{id, name, faces}"}, **documented(401, 413, 422, 503)},
)
async def enrol(ctx: Ctx, request: Request) -> Response:
    try:
        return await _enrol(ctx, request)
    except ApiError as exc:
        if wants_html(request, default=False):
            return _page_error(exc)
        raise


async def _enrol(ctx: ApiContext, request: Request) -> Response:
    library = library_of(ctx)
    if ctx.photo_faces is None:
        raise ApiError(
            503,
            "enrolment_unavailable",
            "enrolment needs the face models (FACES_ENABLED and FACE_IDENTITIES on)",
        )
    if int(request.headers.get("content-length") or 0) > MAX_PHOTOS * MAX_PHOTO_BYTES:
        raise ApiError(413, "upload_too_large", "the photos are too large")
    form = await request.form(max_files=MAX_PHOTOS, max_fields=10)
    try:
        name = form.get(NAME_FIELD)
        photos: list[bytes] = []
        for item in form.getlist(PHOTO_FIELD):
            if not isinstance(item, UploadFile):
                raise ApiError(422, "invalid_request", f"'{PHOTO_FIELD}' must be a file")
            data = await item.read(MAX_PHOTO_BYTES + 1)
            if len(data) > MAX_PHOTO_BYTES:
                raise ApiError(413, "upload_too_large", f"a photo is over {MAX_PHOTO_BYTES} bytes")
            photos.append(data)
    finally:
        await form.close()
    if not isinstance(name, str) or not name.strip():
        raise ApiError(422, "invalid_name", f"the form needs a '{NAME_FIELD}'")
    if not photos:
        raise ApiError(422, "invalid_request", f"the form needs at least one '{PHOTO_FIELD}' file")
    try:
        faces = await anyio.to_thread.run_sync(enrolment_faces, photos, ctx.photo_faces)
    except PhotoError as exc:
        raise ApiError(422, exc.code, exc.message, details={"photo": exc.photo}) from None
    person, count = await _call(library.enrol, name, faces)
    if wants_html(request, default=False):
        return RedirectResponse(f"/people/{person.id}", status_code=303)
    return _json(
        {"id": person.id, "name": person.name, "faces": count},
        201,
        {"Location": f"/people/{person.id}"},
    )


# --- read ----------------------------------------------------------------------------------------
@router.get(
    "/people",
    summary="The library's people, newest first",
    responses={200: {"description": "{people: [...], next}"}, **documented(401, 404, 503)},
)
async def list_people(
    ctx: Ctx,
    request: Request,
    before: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=LIST_MAX)] = LIST_DEFAULT,
) -> Response:
    library = library_of(ctx)
    people, cursor = await _call(lambda: library.list(before=before, limit=limit))
    next_url = f"/people?before={cursor}&limit={limit}" if cursor else None
    rows = [summary(ctx, request, p) for p in people]
    if wants_html(request, default=False):
        from vidwatch.api.people_pages import people_page

        return people_page(ctx, rows, next_url)
    return _json({"people": rows, "next": next_url})


@router.get(
    "/people/{person_id}",
    summary="A person and their appearances across videos",
    responses={200: {"description": "{id, name, appearances}"}, **documented(401, 404, 422, 503)},
)
async def get_person(ctx: Ctx, request: Request, person_id: PersonId) -> Response:
    library = library_of(ctx)
    try:
        person = await _call(library.get, person_id)
    except ApiError as exc:
        if exc.http_status != 404 or not wants_html(request, default=False):
            raise
        from vidwatch.api.page_html import html
        from vidwatch.report.render import render_error

        return html(render_error("No such person", exc.message), 404)
    body = detail(ctx, request, person)
    if wants_html(request, default=False):
        from vidwatch.api.people_pages import person_page

        return person_page(ctx, body)
    return _json(body)


# --- change --------------------------------------------------------------------------------------
async def _body(request: Request) -> dict[str, Any]:
    """The JSON object of the request, or its form fields."""
    if _is_form(request):
        form = await request.form(max_files=0, max_fields=10)
        return {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        raise ApiError(422, "invalid_request", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_request", "the body must be a JSON object")
    return body


@router.patch(
    "/people/{person_id}",
    summary="Name or rename a person",
    responses={200: {"description": "{id, name, ...}"}, **documented(401, 404, 422, 503)},
)
async def rename(ctx: Ctx, request: Request, person_id: PersonId) -> Response:
    library = library_of(ctx)
    body = await _body(request)
    if "name" not in body or not (body["name"] is None or isinstance(body["name"], str)):
        raise ApiError(422, "invalid_name", 'the body must be {"name": "..."} (null: no name)')
    person = await _call(library.rename, person_id, body["name"])
    return _json(summary(ctx, request, person))


@router.post("/people/{person_id}/rename", include_in_schema=False)
async def rename_form(ctx: Ctx, request: Request, person_id: PersonId) -> Response:
    """The page's rename form (browsers post forms; PATCH is the API's)."""
    try:
        body = await _body(request)
        await _call(library_of(ctx).rename, person_id, body.get("name"))
    except ApiError as exc:
        return _page_error(exc)
    return RedirectResponse(f"/people/{person_id}", status_code=303)


@router.post(
    "/people/{person_id}/merge",
    summary="Merge another person into this one",
    responses={200: {"description": "{id, name, ...}"}, **documented(401, 404, 422, 503)},
)
async def merge(ctx: Ctx, request: Request, person_id: PersonId) -> Response:
    try:
        return await _merge(ctx, request, person_id)
    except ApiError as exc:
        if _is_form(request):
            return _page_error(exc)
        raise


async def _merge(ctx: ApiContext, request: Request, person_id: str) -> Response:
    library = library_of(ctx)
    body = await _body(request)
    other = body.get("from")
    other_id = lkeys.normalize_person_id(other) if isinstance(other, str) else None
    if other_id is None:
        raise ApiError(422, "invalid_person_id", 'the body must be {"from": "<person id>"}')
    if other_id == person_id:
        raise ApiError(422, "same_person", "a person cannot be merged into itself")
    person = await _call(library.merge, person_id, other_id)
    if _is_form(request):
        return RedirectResponse(f"/people/{person_id}", status_code=303)
    return _json(summary(ctx, request, person))


@router.delete(
    "/people/{person_id}",
    status_code=204,
    summary="Forget a person: descriptors, face crops, links",
    responses={204: {"description": "forgotten"}, **documented(401, 404, 422, 503)},
)
async def forget(ctx: Ctx, person_id: PersonId) -> Response:
    await _call(library_of(ctx).forget, person_id)
    return Response(status_code=204)


@router.post("/people/{person_id}/forget", include_in_schema=False)
async def forget_form(ctx: Ctx, person_id: PersonId) -> Response:
    try:
        await _call(library_of(ctx).forget, person_id)
    except ApiError as exc:
        return _page_error(exc)
    return RedirectResponse("/people", status_code=303)
