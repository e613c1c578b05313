"""The OpenAPI document stays accurate, and the server does what it says about ids and methods.

The document is checked as built by the app (no stack needed) for a sample of
operations: their parameters, bodies, security and errors. Against the running
stack: the served document is that one and ``/docs`` renders it; entities carry
exactly the documented fields; ids are ASCII digits below 2**63 everywhere (a
bad path id is a 404, a bad parameter a 422, never a 500); a 405 names every
method the path serves. ``tests/test_openapi_fuzz.py`` fuzzes every operation.
"""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
import orjson
import pytest
import redis
from PIL import Image
from pydantic import BaseModel

from api import schemas
from api.app import create_app
from api.params import ID_PATTERN
from redis_store.notifications import marker_key
from tests.conftest import OAuthApp, User, UserFactory
from tests.waiting import wait_for

ERROR_REF = "#/components/schemas/Error"
TOO_BIG = str(2**63)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app().openapi()


def operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return document["paths"][path][method]


def query_names(op: dict[str, Any]) -> set[str]:
    return {p["name"] for p in op.get("parameters", ()) if p["in"] == "query"}


def scopes(op: dict[str, Any]) -> list[dict[str, list[str]]]:
    return op.get("security", [])


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return document["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


# -- the document ---------------------------------------------------------------------------------------------


def test_home_timeline_declares_paging_scope_entities_and_errors(document: dict[str, Any]) -> None:
    op = operation(document, "get", "/api/v1/timelines/home")
    assert query_names(op) == {"max_id", "since_id", "min_id", "limit"}
    max_id = next(p for p in op["parameters"] if p["name"] == "max_id")
    assert max_id["schema"]["pattern"] == ID_PATTERN and not max_id["required"]
    assert {"BearerToken": ["read:statuses"]} in scopes(op) and {"OAuth2": ["read:statuses"]} in scopes(op)
    ok = op["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["items"]["$ref"] == "#/components/schemas/Status"
    assert "Link" in ok["headers"]
    assert {"400", "401", "403", "413", "422", "503"} <= set(op["responses"])
    assert "404" not in op["responses"]


def test_posting_declares_the_body_in_json_and_form_encoding(document: dict[str, Any]) -> None:
    op = operation(document, "post", "/api/v1/statuses")
    content = op["requestBody"]["content"]
    json_body = resolve(document, content["application/json"]["schema"])
    form_body = content["application/x-www-form-urlencoded"]["schema"]
    assert {"status", "media_ids", "in_reply_to_id", "visibility", "sensitive", "spoiler_text"} <= set(
        json_body["properties"]
    )
    assert form_body["properties"]["media_ids[]"]["type"] == "array"  # Mastodon's array encoding in forms
    assert form_body["properties"]["media_ids[]"]["items"]["pattern"] == ID_PATTERN
    assert form_body["properties"]["visibility"]["enum"] == ["public", "unlisted", "private", "direct"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in op["parameters"])
    assert {"BearerToken": ["write:statuses"]} in scopes(op)
    assert {"401", "403", "404", "422", "429", "503"} <= set(op["responses"])
    assert op["responses"]["429"]["headers"]["Retry-After"]


def test_notifications_declare_their_filters_and_markers_their_form_fields(document: dict[str, Any]) -> None:
    notifications = operation(document, "get", "/api/v1/notifications")
    types = next(p for p in notifications["parameters"] if p["name"] == "types[]")
    assert types["schema"]["type"] == "array" and "favourite" in types["schema"]["items"]["enum"]
    assert {"OAuth2": ["read:notifications"]} in scopes(notifications)
    markers = operation(document, "post", "/api/v1/markers")["requestBody"]["content"]
    form = markers["application/x-www-form-urlencoded"]["schema"]["properties"]
    assert form["notifications[last_read_id]"]["pattern"] == ID_PATTERN
    assert resolve(document, markers["application/json"]["schema"])["properties"].keys() == {"home", "notifications"}


def test_path_ids_public_optional_and_app_tokens(document: dict[str, Any]) -> None:
    account = operation(document, "get", "/api/v1/accounts/{account_id}")
    (param,) = account["parameters"]
    assert param["in"] == "path" and param["schema"]["pattern"] == ID_PATTERN
    assert "security" not in account and "404" in account["responses"] and "422" not in account["responses"]
    status = operation(document, "get", "/api/v1/statuses/{status_id}")
    assert {} in scopes(status)  # a token is optional: it only shows private posts the caller may see
    sign_up = operation(document, "post", "/api/v1/accounts")
    assert {"BearerToken": []} in scopes(sign_up)  # any app token
    assert "403" not in sign_up["responses"] and "429" in sign_up["responses"]


def test_media_upload_and_oauth_token_bodies(document: dict[str, Any]) -> None:
    upload = operation(document, "post", "/api/v2/media")
    multipart = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert multipart["required"] == ["file"] and multipart["properties"]["file"]["format"] == "binary"
    assert {"200", "202", "413", "415", "422"} <= set(upload["responses"])
    token = operation(document, "post", "/oauth/token")
    body = resolve(document, token["requestBody"]["content"]["application/json"]["schema"])
    assert set(body["properties"]["grant_type"]["enum"]) == {"password", "client_credentials", "authorization_code"}
    assert "security" not in token and "422" not in token["responses"]  # RFC 6749 answers 400


def test_every_operation_is_self_consistent(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["BearerToken"]["scheme"] == "bearer" and schemes["OAuth2"]["type"] == "oauth2"
    operation_ids = []
    text = orjson.dumps(document).decode()
    for name in {part.split('"')[0] for part in text.split('"$ref":"#/components/schemas/')[1:]}:
        assert name in document["components"]["schemas"], name
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            operation_ids.append(op["operationId"])
            declared = {p["name"] for p in op.get("parameters", ()) if p["in"] == "path"}
            assert declared == {part.split("}")[0] for part in path.split("{")[1:]}, (method, path)
            for status, response in op["responses"].items():
                json_body = response.get("content", {}).get("application/json")
                if status[0] in "45" and json_body and path != "/health":  # /health answers its report
                    assert json_body["schema"]["$ref"] == ERROR_REF, (method, path, status)
            if any(requirement for requirement in scopes(op)):
                assert "401" in op["responses"], (method, path)
    assert len(operation_ids) == len(set(operation_ids))


# -- against the running stack -----------------------------------------------------------------------------------


def test_served_document_is_the_apps_and_docs_render(http: httpx.Client, document: dict[str, Any]) -> None:
    served = http.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == orjson.loads(orjson.dumps(document))
    docs = http.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text and "/openapi.json" in docs.text


def fields(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def test_entities_carry_exactly_the_documented_fields(
    http: httpx.Client, make_user: UserFactory, oauth_app: OAuthApp
) -> None:
    me, friend = make_user(), make_user()
    assert http.post(f"/api/v1/accounts/{me.id}/follow", headers=friend.headers).status_code == 200
    post = http.post("/api/v1/statuses", headers=me.headers, data={"status": "documented"}).json()
    reblog = http.post(f"/api/v1/statuses/{post['id']}/reblog", headers=friend.headers).json()
    assert set(post) == fields(schemas.Status) and set(post["account"]) == fields(schemas.Account)
    assert set(reblog["reblog"]) == fields(schemas.Status)
    credentials = http.get("/api/v1/accounts/verify_credentials", headers=me.headers).json()
    assert set(credentials) == fields(schemas.CredentialAccount)
    assert set(credentials["source"]) == fields(schemas.AccountSource)
    (relationship,) = http.get("/api/v1/accounts/relationships", params={"id[]": friend.id}, headers=me.headers).json()
    assert set(relationship) == fields(schemas.Relationship)
    notifications = wait_for(lambda: http.get("/api/v1/notifications", headers=me.headers).json(), len)
    assert all(set(n) == fields(schemas.Notification) for n in notifications)
    grouped = http.get("/api/v2/notifications", headers=me.headers).json()
    assert set(grouped) == fields(schemas.GroupedNotificationsResults)
    assert set(grouped["notification_groups"][0]) == fields(schemas.NotificationGroup)
    marker = http.post("/api/v1/markers", headers=me.headers, data={"home[last_read_id]": post["id"]}).json()
    assert set(marker["home"]) == fields(schemas.Marker)
    app = http.post("/api/v1/apps", data={"client_name": "documented"}).json()
    assert set(app) == fields(schemas.CredentialApplication)
    app_view = http.get("/api/v1/apps/verify_credentials", headers={"Authorization": f"Bearer {oauth_app.app_token}"})
    assert set(app_view.json()) == fields(schemas.Application)
    assert set(http.get("/api/v1/instance").json()) == fields(schemas.InstanceV1)
    assert set(http.get("/api/v2/instance").json()) == fields(schemas.InstanceV2)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PATCH", "/api/v1/statuses/1", "GET, DELETE"),  # two routes serve this path
        ("PUT", "/api/v1/markers", "GET, POST"),
        ("GET", "/api/v1/notifications/clear", "POST"),  # not a notification id
        ("GET", "/api/v1/accounts/update_credentials", "PATCH"),
        ("DELETE", "/api/v1/accounts/relationships", "GET"),
        ("POST", "/media/v1/a.jpg", "GET, HEAD"),
    ],
)
def test_405_names_every_method_the_path_serves(http: httpx.Client, method: str, path: str, allow: str) -> None:
    response = http.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json() == {"error": "Method Not Allowed"}


NOT_IDS = ["²", "١٢", "１２", "1_000", "+5", " 12", "12.0", "-1", TOO_BIG, "1" * 20]


@pytest.mark.parametrize("raw", NOT_IDS)
def test_a_path_id_that_is_not_ascii_digits_below_2_63_is_a_404(http: httpx.Client, user: User, raw: str) -> None:
    for method, path in (
        ("GET", f"/api/v1/statuses/{raw}"),
        ("GET", f"/api/v1/accounts/{raw}"),
        ("POST", f"/api/v1/accounts/{raw}/follow"),
        ("GET", f"/api/v1/notifications/{raw}"),
        ("GET", f"/api/v1/media/{raw}"),
    ):
        response = http.request(method, path, headers=user.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json() == {"error": "Record not found"}


@pytest.mark.parametrize("raw", NOT_IDS)
def test_an_id_parameter_that_is_not_ascii_digits_below_2_63_is_a_422(http: httpx.Client, user: User, raw: str) -> None:
    me = user.headers
    for response in (
        http.get("/api/v1/timelines/home", params={"max_id": raw}, headers=me),
        http.get("/api/v1/timelines/home", params={"since_id": raw}, headers=me),
        http.get(f"/api/v1/accounts/{user.id}/statuses", params={"min_id": raw}),
        http.get("/api/v1/notifications", params={"account_id": raw}, headers=me),
        http.post("/api/v1/statuses", data={"status": "x", "in_reply_to_id": raw}, headers=me),
        http.post("/api/v1/statuses", data={"status": "x", "media_ids[]": raw}, headers=me),
        http.post("/api/v1/statuses", json={"status": "x", "media_ids": [raw]}, headers=me),
        http.post("/api/v1/markers", data={"notifications[last_read_id]": raw}, headers=me),
        http.post("/api/v1/markers", json={"home": {"last_read_id": raw}}, headers=me),
    ):
        assert response.status_code == 422, (response.request.url, response.text)
        assert "must be an id" in response.json()["error"]
    assert http.get("/api/v1/notifications/unread_count", headers=me).status_code == 200
    assert http.get(f"/api/v1/accounts/{user.id}/statuses", headers=me).json() == []  # nothing was posted


@pytest.fixture
def user(make_user: UserFactory) -> User:
    return make_user()


def test_a_marker_stored_before_ids_were_checked_does_not_break_the_unread_count(
    http: httpx.Client, user: User, redis_client: redis.Redis
) -> None:
    """Markers are durable; one written as "²" by an older version must not make every unread count a 500."""
    legacy = {"last_read_id": "²", "version": 1, "updated_at": int(time.time() * 1000)}
    redis_client.hset(marker_key(int(user.id)), "notifications", orjson.dumps(legacy))
    count = http.get("/api/v1/notifications/unread_count", headers=user.headers)
    assert count.status_code == 200 and count.json() == {"count": 0}
    fixed = http.post("/api/v1/markers", data={"notifications[last_read_id]": "1"}, headers=user.headers)
    assert fixed.status_code == 200 and fixed.json()["notifications"]["last_read_id"] == "1"


def test_numbers_in_a_range_header_are_ascii_digits(http: httpx.Client, user: User) -> None:
    """A malformed Range is ignored (RFC 9110): the whole file, not a 500 from int("²")."""
    image = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 120, 200)).save(image, "PNG")
    upload = http.post("/api/v2/media", headers=user.headers, files={"file": ("a.png", image.getvalue(), "image/png")})
    assert upload.status_code in (200, 202), upload.text
    ready = wait_for(
        lambda: http.get(f"/api/v1/media/{upload.json()['id']}", headers=user.headers), lambda r: r.status_code == 200
    )
    url = ready.json()["url"]
    whole = http.get(url)
    assert whole.status_code == 200
    for header in ("bytes=²-", "bytes=-٣", "bytes=x-5", "bytes=0-x", "bytes=" + "9" * 5000 + "-"):
        response = http.get(url, headers={"Range": header.encode()})  # as a client may send it: UTF-8
        assert response.status_code == 200 and response.content == whole.content, header
