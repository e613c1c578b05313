"""Mastodon.py, unchanged, against raygram."""

from __future__ import annotations

from mastodon import Mastodon

from tests.conftest import unique_name


def test_mastodon_py_creates_an_app_signs_up_logs_in_and_verifies(base_url: str) -> None:
    client_id, client_secret = Mastodon.create_app(
        "mastodon-py-test", api_base_url=base_url, scopes=["read", "write", "follow"]
    )
    username = unique_name("mpy")
    signup = Mastodon(
        client_id=client_id, client_secret=client_secret, api_base_url=base_url, version_check_mode="none"
    )
    signup.create_account(
        username, "a long password", f"{username}@example.org", agreement=True, scopes=["read", "write", "follow"]
    )
    api = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base_url, version_check_mode="none")
    api.log_in(username, "a long password", scopes=["read", "write", "follow"])
    me = api.account_verify_credentials()
    assert me.username == username
    assert api.account(me.id).acct == username
