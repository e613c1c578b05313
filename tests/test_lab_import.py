"""``raygram import``: the edge-list readers, the synthetic generator, and imports into the real stack."""

from __future__ import annotations

import gzip
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import httpx
import neo4j
import numpy as np
import pytest
import redis

import cli
from graph.driver import GraphClient
from lab import graphs
from lab.graphs import EdgeListError, read_edge_list, synthetic
from lab.importer import GraphImport, ImportReport
from redis_store.client import claim_id_generator, connect
from redis_store.followers import followers_key
from redis_store.timelines import celeb_ready_key
from stack import Stack
from tests.conftest import OAuthApp
from tests.test_feed import eventually

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def pairs(edges: graphs.EdgeList) -> set[tuple[int, int]]:
    """The follows as (file id, file id)."""
    return {(int(edges.ids[a]), int(edges.ids[b])) for a, b in zip(edges.src, edges.dst, strict=True)}


# -- reading files --------------------------------------------------------------------------


def test_csv_with_header_comments_weights_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text(
        "# a comment\n% another\nid_1,id_2,weight\n10,20,0.5\n20,30,1\nx,40,1\n30,10,2\n\n1 2 3 4 5\n10,20,7\n"
        "40,40,1\n50,60,heavy\n"
    )
    edges = read_edge_list(path, directed=True)
    assert pairs(edges) == {(10, 20), (20, 30), (30, 10)}
    assert list(edges.ids) == [10, 20, 30, 40]  # 40 is a node (of a self-loop) without follows
    assert [number for number, _ in edges.skipped] == [6, 9, 12]
    assert "not an integer" in edges.skipped[0][1] and "'x,40,1'" in edges.skipped[0][1]
    assert edges.self_loops == 1 and edges.duplicates == 1
    with pytest.raises(EdgeListError, match=r"line 6: an id is not an integer"):
        read_edge_list(path, directed=True, strict=True)


def test_whitespace_list_undirected_becomes_a_follow_each_way(tmp_path: Path) -> None:
    path = tmp_path / "g.txt"
    path.write_text("# SNAP style\n1\t2\n2 3\n3  1\n2 1\n")
    edges = read_edge_list(path, directed=False)
    assert pairs(edges) == {(1, 2), (2, 1), (2, 3), (3, 2), (3, 1), (1, 3)}
    assert edges.nodes == 3 and edges.duplicates == 2  # "2 1" repeats "1 2" both ways
    assert list(edges.src) == sorted(edges.src)  # sorted by follower


def test_matrix_market_banner_size_line_and_a_bad_size_line(tmp_path: Path) -> None:
    good = tmp_path / "g.mtx"
    good.write_text("%%MatrixMarket matrix coordinate pattern symmetric\n% comment\n4 4 3\n1 2\n2 3\n3 4\n")
    assert pairs(read_edge_list(good, directed=True)) == {(1, 2), (2, 3), (3, 4)}
    bad = tmp_path / "bad.mtx"
    bad.write_text("%%MatrixMarket matrix coordinate real general\n4 4\n1 2 1.5\n")
    edges = read_edge_list(bad, directed=True)
    assert pairs(edges) == {(1, 2)} and [n for n, _ in edges.skipped] == [2]
    with pytest.raises(EdgeListError, match=r"bad\.mtx, line 2: expected the Matrix Market size line"):
        read_edge_list(bad, directed=True, strict=True)


def test_gzip_is_recognised_by_its_bytes_not_its_name(tmp_path: Path) -> None:
    path = tmp_path / "plain-looking.txt"
    path.write_bytes(gzip.compress(b"id_1,id_2\n5,6\n6,7\n"))
    assert pairs(read_edge_list(path, directed=True)) == {(5, 6), (6, 7)}


def test_chunks_read_by_numpy_and_line_by_line_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny chunks: regular ones go through numpy, the one with a comment and the one with a bad line are read
    line by line; line numbers stay right across chunk boundaries."""
    lines = [f"{i} {i + 1}" for i in range(200)]
    lines[120] = "# a comment in the middle"
    lines[150] = "7 eight"
    path = tmp_path / "g.txt"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(graphs, "CHUNK_BYTES", 64)
    edges = read_edge_list(path, directed=True)
    assert pairs(edges) == {(i, i + 1) for i in range(200) if i not in (120, 150)}
    assert [n for n, _ in edges.skipped] == [151]


def test_a_file_without_edges_or_a_missing_choice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("id_1,id_2\nx,y\n")
    with pytest.raises(EdgeListError, match="no edges found"):
        read_edge_list(empty, directed=True)
    assert cli.main(["import", str(empty)]) == 1
    assert "--directed" in capsys.readouterr().err
    assert cli.main(["import", str(empty), "--directed", "--strict"]) == 1
    assert "line 2" in capsys.readouterr().err
    assert cli.main(["import", "--synthetic", "1"]) == 1
    assert "at least two accounts" in capsys.readouterr().err


def test_the_shared_data_sets_read_as_their_readme_says() -> None:
    if not (DATASETS / "musae-github.csv").exists():
        pytest.skip(f"the shared data sets are not at {DATASETS}")
    edges = read_edge_list(DATASETS / "musae-github.csv", directed=False)
    assert (edges.nodes, len(edges) // 2, int(np.bincount(edges.dst).max())) == (37_700, 289_003, 9_458)
    assert not edges.skipped


# -- the generator -----------------------------------------------------------------------------


def test_synthetic_graphs_are_deterministic_per_seed_and_heavy_tailed() -> None:
    one, again, other = synthetic(20_000, 2.1, seed=5), synthetic(20_000, 2.1, seed=5), synthetic(20_000, 2.1, seed=6)
    assert np.array_equal(one.src, again.src) and np.array_equal(one.dst, again.dst)
    assert not (np.array_equal(one.src, other.src) and np.array_equal(one.dst, other.dst))
    assert len(one) == 200_000 and one.nodes == 20_000
    assert not np.any(one.src == one.dst)
    keys = one.src.astype(np.int64) * one.nodes + one.dst
    assert len(np.unique(keys)) == len(keys)
    followers = np.bincount(one.dst, minlength=one.nodes)
    assert followers.max() > 100 * np.median(followers)  # hubs, as in the real data sets


# -- importing into the stack ------------------------------------------------------------------


class Stop(Exception):
    """Raised by a progress callback: the run ends there, as if the process had died between two batches."""


async def run_import(stack: Stack, edges: graphs.EdgeList, prefix: str, batch: int, progress=None) -> ImportReport:
    s = stack.settings
    graph = GraphClient(s.neo4j_uri, s.neo4j_user, s.neo4j_password, s.neo4j_database)
    redis_client = connect(s.redis_url)
    ids = await claim_id_generator(redis_client)
    try:
        return await GraphImport(s, graph, redis_client, ids, progress).run(edges, prefix, batch=batch)
    finally:
        await ids.release()
        await graph.close()
        await redis_client.aclose()


def graph_state(session: neo4j.Session, prefix: str) -> tuple[Counter, dict[str, dict]]:
    """(follows as (username, username) with their multiplicity, account fields by username) under ``prefix``."""
    follows = session.run(
        "MATCH (a:Account)-[f:FOLLOWS]->(b:Account) WHERE a.username STARTS WITH $p "
        "RETURN a.username AS a, b.username AS b, f.id AS id, f.created_at AS t",
        p=prefix,
    ).data()
    assert all(row["id"] and row["t"] for row in follows)
    assert len({row["id"] for row in follows}) == len(follows)  # every edge has its own snowflake
    accounts = session.run(
        "MATCH (a:Account) WHERE a.username STARTS WITH $p RETURN a.username AS u, a.id AS id, "
        "a.followers_count AS followers, a.following_count AS following, a.celebrity AS celebrity",
        p=prefix,
    ).data()
    return Counter((row["a"], row["b"]) for row in follows), {row["u"]: row for row in accounts}


async def test_an_interrupted_import_resumes_and_a_repeat_changes_nothing(
    stack: Stack, graph_session: neo4j.Session, redis_client: redis.Redis, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}_"
    path = tmp_path / "g.txt"
    # Node 0 gets four followers: a celebrity at the tests' threshold (3).
    path.write_text("1 0\n2 0\n3 0\n4 0\n1 2\n2 3\n3 1\n4 1\n0 4\n5 5\n1 0\n")  # 5: an account, no follows
    edges = read_edge_list(path, directed=True)
    expected = {(f"{prefix}{a}", f"{prefix}{b}") for a, b in pairs(edges)}

    def stop_after_two_batches(phase: str, done: int, total: int) -> None:
        if phase == "follows" and done >= 6:
            raise Stop

    with pytest.raises(Stop):
        await run_import(stack, edges, prefix, batch=3, progress=stop_after_two_batches)
    follows, _ = graph_state(graph_session, prefix)
    assert sum(follows.values()) == 6  # two batches of three were written before the stop

    resumed = await run_import(stack, edges, prefix, batch=3)
    assert (resumed.batches_skipped, resumed.follows_written, resumed.accounts_created) == (2, len(edges) - 6, 0)
    repeat = await run_import(stack, edges, prefix, batch=3)
    assert (repeat.follows_written, repeat.accounts_created) == (0, 0)

    follows, accounts = graph_state(graph_session, prefix)
    assert set(follows) == expected and set(follows.values()) == {1}
    for username, row in accounts.items():
        assert row["followers"] == sum(1 for _, b in expected if b == username)
        assert row["following"] == sum(1 for a, _ in expected if a == username)
    hub = accounts[f"{prefix}0"]
    assert hub["followers"] == 4 and hub["celebrity"]
    assert [a for a, row in accounts.items() if row["celebrity"]] == [f"{prefix}0"]
    assert resumed.celebrities == [hub["id"]]
    eventually(lambda: redis_client.exists(celeb_ready_key(hub["id"])) == 1, what="the hub's promotion")


async def test_follows_of_accounts_that_existed_before_are_not_doubled(
    stack: Stack, graph_session: neo4j.Session, redis_client: redis.Redis, tmp_path: Path, make_user, http
) -> None:
    """Accounts signed up before the import under an imported username are adopted; an API follow the file
    repeats stays one follow, and that author's follower list in Redis is dropped for fan-out to rebuild."""
    prefix = f"t{uuid.uuid4().hex[:6]}_"
    user, author = make_user(f"{prefix}7"), make_user(f"{prefix}8")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=user.headers).status_code == 200
    redis_client.zadd(followers_key(int(author.id)), {"0" * 19: 0})  # stands for a list fan-out built
    path = tmp_path / "g.txt"
    path.write_text("7 8\n7 9\n9 8\n")
    report = await run_import(stack, read_edge_list(path, directed=True), prefix, batch=2)
    assert report.accounts_created == 1  # only node 9
    follows, accounts = graph_state(graph_session, prefix)
    assert follows == Counter(
        {(f"{prefix}7", f"{prefix}8"): 1, (f"{prefix}7", f"{prefix}9"): 1, (f"{prefix}9", f"{prefix}8"): 1}
    )
    assert (accounts[f"{prefix}7"]["following"], accounts[f"{prefix}8"]["followers"]) == (2, 2)
    assert redis_client.exists(followers_key(int(author.id))) == 0
    assert http.get(f"/api/v1/accounts/{author.id}").json()["followers_count"] == 2  # the cached record is gone


def password_grant(http: httpx.Client, app: OAuthApp, username: str, password: str) -> dict[str, str]:
    response = http.post(
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
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_imported_accounts_log_in_and_read_their_followees_posts(
    stack: Stack, http: httpx.Client, oauth_app: OAuthApp, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Through the command, as a user runs it: friendships (a follow each way), passwords for three nodes.
    Node 30 has three followers (a celebrity at the tests' threshold): its post is pulled, node 20's pushed."""
    prefix = f"t{uuid.uuid4().hex[:6]}_"
    graph_file, password_file = tmp_path / "friends.csv", tmp_path / "passwords.txt"
    graph_file.write_text("id_1,id_2\n10,20\n10,30\n20,30\n40,30\n")
    password_file.write_text("# node password\n10 password-of-ten\n20,password-of-twenty\n30 password of thirty\n")
    command = [str(Path(sys.executable).parent / "raygram"), "import", str(graph_file), "--undirected"]
    done = subprocess.run(
        [*command, "--prefix", prefix, "--passwords", str(password_file)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "imported 4 accounts (4 new" in done.stdout and "8 follows (8 written now" in done.stdout

    ten = password_grant(http, oauth_app, f"{prefix}10", "password-of-ten")
    twenty = password_grant(http, oauth_app, f"{prefix}20", "password-of-twenty")
    thirty = password_grant(http, oauth_app, f"{prefix}30", "password of thirty")
    me = http.get("/api/v1/accounts/verify_credentials", headers=ten).json()
    assert (me["username"], me["followers_count"], me["following_count"]) == (f"{prefix}10", 2, 2)
    star = http.get("/api/v1/accounts/verify_credentials", headers=thirty).json()
    assert star["followers_count"] == 3
    eventually(lambda: redis_client.exists(celeb_ready_key(int(star["id"]))) == 1, what="node 30's promotion")

    pushed = http.post("/api/v1/statuses", headers=twenty, data={"status": "from twenty"}).json()["id"]
    pulled = http.post("/api/v1/statuses", headers=thirty, data={"status": "from thirty"}).json()["id"]

    def home_of_ten() -> list[str]:
        return [s["id"] for s in http.get("/api/v1/timelines/home", headers=ten).json()]

    eventually(lambda: home_of_ten()[:2] == [pulled, pushed], what="both posts in node 10's home feed")
    with pytest.raises(httpx.HTTPStatusError):  # a node without a password cannot log in
        http.post(
            "/oauth/token",
            data={
                "grant_type": "password",
                "client_id": oauth_app.client_id,
                "client_secret": oauth_app.client_secret,
                "username": f"{prefix}40",
                "password": "password-of-ten",
            },
        ).raise_for_status()
    again = subprocess.run([*command, "--prefix", prefix], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "(0 new" in again.stdout and "0 written now" in again.stdout
