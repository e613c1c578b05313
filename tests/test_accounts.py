"""Sign-up, login, profiles and every way to get them wrong, over HTTP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import OAuthApp, UserFactory, unique_name


def sign_up(http: httpx.Client, app: OAuthApp, **fields: str) -> httpx.Response:
    data = {
        "username": unique_name(),
        "email": f"{unique_name()}@example.org",
        "password": "long enough pw",
        "agreement": "true",
        **fields,
    }
    return http.post("/api/v1/accounts", headers={"Authorization": f"Bearer {app.app_token}"}, data=data)


def password_grant(http: httpx.Client, app: OAuthApp, username: str, password: str) -> httpx.Response:
    return http.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "username": username,
            "password": password,
            "scope": "read write",
        },
    )


def test_health_reports_every_dependency(http: httpx.Client) -> None:
    body = http.get("/health").json()
    assert body == {"status": "ok", "redis": "ok", "graph": "ok", "ray": "ok"}


def test_sign_up_returns_a_working_user_token(http: httpx.Client, oauth_app: OAuthApp) -> None:
    username = unique_name("Alice_")
    response = sign_up(http, oauth_app, username=username)
    assert response.status_code == 200, response.text
    token = response.json()
    assert token["token_type"] == "Bearer" and token["access_token"]
    me = http.get("/api/v1/accounts/verify_credentials", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.status_code == 200
    body = me.json()
    assert body["username"] == username and body["acct"] == username
    assert isinstance(body["id"], str) and body["id"].isdigit()
    assert body["source"]["privacy"] == "public"
    assert "password" not in me.text and "argon2" not in me.text


def test_login_with_username_or_email(http: httpx.Client, oauth_app: OAuthApp, make_user: UserFactory) -> None:
    user = make_user()
    for login in (user.username, user.username.upper(), user.email):
        response = password_grant(http, oauth_app, login, user.password)
        assert response.status_code == 200, (login, response.text)
        token = response.json()["access_token"]
        me = http.get("/api/v1/accounts/verify_credentials", headers={"Authorization": f"Bearer {token}"}).json()
        assert me["id"] == user.id


def test_wrong_password_and_unknown_user_read_the_same(
    http: httpx.Client, oauth_app: OAuthApp, make_user: UserFactory
) -> None:
    user = make_user()
    wrong = password_grant(http, oauth_app, user.username, "not the password")
    unknown = password_grant(http, oauth_app, unique_name(), "not the password")
    assert wrong.status_code == unknown.status_code == 400
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"] == "invalid_grant"


def test_bad_client_credentials_are_refused(http: httpx.Client, oauth_app: OAuthApp) -> None:
    response = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": oauth_app.client_id, "client_secret": "wrong"},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    response = http.post(
        "/oauth/token",
        data={"grant_type": "magic", "client_id": oauth_app.client_id, "client_secret": oauth_app.client_secret},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_duplicate_username_is_refused_regardless_of_case(http: httpx.Client, oauth_app: OAuthApp) -> None:
    username = unique_name("Dup")
    assert sign_up(http, oauth_app, username=username).status_code == 200
    again = sign_up(http, oauth_app, username=username.lower())
    assert again.status_code == 422
    assert again.json()["details"]["username"][0]["error"] == "ERR_TAKEN"


def test_duplicate_email_is_refused(http: httpx.Client, oauth_app: OAuthApp) -> None:
    email = f"{unique_name()}@example.org"
    assert sign_up(http, oauth_app, email=email).status_code == 200
    again = sign_up(http, oauth_app, email=email.upper())
    assert again.status_code == 422
    assert "email" in again.json()["details"]


def test_concurrent_sign_ups_for_one_username_have_exactly_one_winner(
    http: httpx.Client, oauth_app: OAuthApp, base_url: str
) -> None:
    username = unique_name("race")

    def attempt(i: int) -> int:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            return sign_up(client, oauth_app, username=username, email=f"{username}{i}@example.org").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(attempt, range(8)))
    assert sorted(statuses) == [200] + [422] * 7
    assert http.get("/api/v1/accounts/lookup", params={"acct": username}).status_code == 200


def test_revoked_token_stops_working(http: httpx.Client, oauth_app: OAuthApp, make_user: UserFactory) -> None:
    user = make_user()
    token = password_grant(http, oauth_app, user.username, user.password).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert http.get("/api/v1/accounts/verify_credentials", headers=headers).status_code == 200
    revoked = http.post(
        "/oauth/revoke",
        data={"client_id": oauth_app.client_id, "client_secret": oauth_app.client_secret, "token": token},
    )
    assert revoked.status_code == 200
    after = http.get("/api/v1/accounts/verify_credentials", headers=headers)
    assert after.status_code == 401
    assert "error" in after.json()
    # The user's other tokens are unaffected.
    assert http.get("/api/v1/accounts/verify_credentials", headers=user.headers).status_code == 200


def test_update_credentials_changes_the_profile(http: httpx.Client, make_user: UserFactory) -> None:
    user = make_user()
    response = http.patch(
        "/api/v1/accounts/update_credentials",
        headers=user.headers,
        data={"display_name": "Ada <L>", "note": "hello\nworld"},
    )
    assert response.status_code == 200, response.text
    public = http.get(f"/api/v1/accounts/{user.id}").json()
    assert public["display_name"] == "Ada <L>"
    assert public["note"] == "<p>hello<br />world</p>"
    too_long = http.patch("/api/v1/accounts/update_credentials", headers=user.headers, data={"note": "x" * 501})
    assert too_long.status_code == 422
    assert http.get(f"/api/v1/accounts/{user.id}").json()["note"] == "<p>hello<br />world</p>"


def test_lookup_and_get_account(http: httpx.Client, make_user: UserFactory) -> None:
    user = make_user()
    assert http.get("/api/v1/accounts/lookup", params={"acct": user.username}).json()["id"] == user.id
    assert http.get("/api/v1/accounts/lookup", params={"acct": f"@{user.username}@localhost"}).json()["id"] == user.id
    assert http.get("/api/v1/accounts/lookup", params={"acct": f"{user.username}@elsewhere.example"}).status_code == 404
    assert http.get(f"/api/v1/accounts/{user.id}").json()["username"] == user.username
    for bad in ("1", "abc", "99999999999999999999999"):
        response = http.get(f"/api/v1/accounts/{bad}")
        assert response.status_code == 404 and response.json() == {"error": "Record not found"}


@pytest.mark.parametrize(
    ("fields", "status", "field"),
    [
        ({"username": ""}, 422, "username"),
        ({"username": "x" * 31}, 422, "username"),
        ({"username": "has space"}, 422, "username"),
        ({"username": "dots.not.allowed"}, 422, "username"),
        ({"username": "ünïcode"}, 422, "username"),
        ({"username": "admin"}, 422, "username"),
        ({"email": "not-an-email"}, 422, "email"),
        ({"password": "short"}, 422, "password"),
        ({"password": "p" * 129}, 422, "password"),
        ({"agreement": "false"}, 422, "agreement"),
        ({"username": "y" * 300}, 422, None),
    ],
)
def test_bad_sign_up_fields_are_refused_and_change_nothing(
    http: httpx.Client, oauth_app: OAuthApp, fields: dict, status: int, field: str | None
) -> None:
    email = f"{unique_name()}@example.org"
    response = sign_up(http, oauth_app, **({"email": email} | fields))
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    if field:
        assert field in body.get("details", {}) or field in body["error"].lower()
    # Nothing was created: the email is still free.
    assert sign_up(http, oauth_app, email=email).status_code == 200


def test_missing_fields_and_malformed_bodies(http: httpx.Client, oauth_app: OAuthApp) -> None:
    headers = {"Authorization": f"Bearer {oauth_app.app_token}"}
    missing = http.post("/api/v1/accounts", headers=headers, data={"username": unique_name()})
    assert missing.status_code == 422 and "email" in missing.json()["error"]
    malformed = http.post(
        "/api/v1/accounts", headers={**headers, "Content-Type": "application/json"}, content=b"{not json"
    )
    assert malformed.status_code == 400 and "JSON" in malformed.json()["error"]
    not_object = http.post(
        "/api/v1/accounts", headers={**headers, "Content-Type": "application/json"}, content=b"[1, 2]"
    )
    assert not_object.status_code == 400
    as_json = http.post(
        "/api/v1/accounts",
        headers=headers,
        json={
            "username": unique_name(),
            "email": f"{unique_name()}@example.org",
            "password": "long enough pw",
            "agreement": True,
        },
    )
    assert as_json.status_code == 200


def test_endpoints_refuse_missing_bad_or_app_only_tokens(http: httpx.Client, oauth_app: OAuthApp) -> None:
    assert http.get("/api/v1/accounts/verify_credentials").status_code == 401
    bad = http.get("/api/v1/accounts/verify_credentials", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["error"]
    app_only = http.get(
        "/api/v1/accounts/verify_credentials", headers={"Authorization": f"Bearer {oauth_app.app_token}"}
    )
    assert app_only.status_code == 403
    no_token_signup = http.post("/api/v1/accounts", data={"username": unique_name()})
    assert no_token_signup.status_code == 401


def test_unknown_route_is_a_json_404(http: httpx.Client) -> None:
    response = http.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.json() == {"error": "Record not found"}


def test_authorization_code_flow(http: httpx.Client, make_user: UserFactory) -> None:
    user = make_user()
    redirect = "https://client.example/callback"
    app = http.post("/api/v1/apps", data={"client_name": "web", "redirect_uris": redirect, "scopes": "read"}).json()
    page = http.get(
        "/oauth/authorize",
        params={"client_id": app["client_id"], "redirect_uri": redirect, "response_type": "code", "scope": "read"},
    )
    assert page.status_code == 200 and "<form" in page.text
    form = {
        "client_id": app["client_id"],
        "redirect_uri": redirect,
        "scope": "read",
        "state": "xyz",
        "response_type": "code",
        "username": user.username,
        "password": user.password,
    }
    answer = http.post("/oauth/authorize", data=form)
    assert answer.status_code == 302
    location = httpx.URL(answer.headers["location"])
    assert location.params["state"] == "xyz"
    code = location.params["code"]
    exchange = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect,
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
    }
    token = http.post("/oauth/token", data=exchange)
    assert token.status_code == 200, token.text
    me = http.get(
        "/api/v1/accounts/verify_credentials", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    ).json()
    assert me["id"] == user.id
    assert http.post("/oauth/token", data=exchange).status_code == 400  # codes are single-use
    wrong = http.post("/oauth/authorize", data={**form, "password": "wrong password"})
    assert wrong.status_code == 401


def test_instance_entities(http: httpx.Client) -> None:
    v1 = http.get("/api/v1/instance").json()
    assert v1["uri"] and v1["urls"]["streaming_api"].startswith("ws")
    v2 = http.get("/api/v2/instance").json()
    assert v2["domain"] and v2["configuration"]["statuses"]["max_media_attachments"] == 10


def test_token_scopes_are_enforced(http: httpx.Client, oauth_app: OAuthApp, make_user: UserFactory) -> None:
    user = make_user()
    grant = {
        "grant_type": "password",
        "client_id": oauth_app.client_id,
        "client_secret": oauth_app.client_secret,
        "username": user.username,
        "password": user.password,
    }
    read_only = http.post("/oauth/token", data={**grant, "scope": "read"}).json()["access_token"]
    headers = {"Authorization": f"Bearer {read_only}"}
    assert http.get("/api/v1/timelines/home", headers=headers).status_code == 200
    refused = http.post("/api/v1/statuses", headers=headers, data={"status": "not allowed"})
    assert refused.status_code == 403 and refused.json()["error"] == "This action is outside the authorized scopes"
    assert http.post(f"/api/v1/accounts/{user.id}/follow", headers=headers).status_code == 403
    granular = http.post("/oauth/token", data={**grant, "scope": "read write:statuses"}).json()["access_token"]
    allowed = http.post("/api/v1/statuses", headers={"Authorization": f"Bearer {granular}"}, data={"status": "ok"})
    assert allowed.status_code == 200
    legacy_follow = http.post("/oauth/token", data={**grant, "scope": "read follow"}).json()["access_token"]
    other = make_user()
    followed = http.post(f"/api/v1/accounts/{other.id}/follow", headers={"Authorization": f"Bearer {legacy_follow}"})
    assert followed.status_code == 200
