"""Rendezvous sharding of the sources (``genrecast run --shard K/N``): the split's properties."""

from __future__ import annotations

import math
import os

import pytest

from genrecast.daemon.config import load_config
from genrecast.daemon.shard import Shard, ShardError, member_sources, owner, parse_shard, share

SOURCES = [f"station-{i}" for i in range(1000)]


def _band(n: int, p: float, sigmas: float = 5.0) -> tuple[float, float]:
    """n*p ± 5 standard deviations of Binomial(n, p): what a uniform hash keeps a count within,
    but for a chance of about 6e-7 per count (the ids are fixed, so the test is deterministic)."""
    sd = math.sqrt(n * p * (1 - p))
    return n * p - sigmas * sd, n * p + sigmas * sd


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])
def test_shares_are_disjoint_cover_every_source_and_keep_the_order(n: int) -> None:
    shares = [share(SOURCES, Shard(k, n)) for k in range(1, n + 1)]
    assert sum(len(s) for s in shares) == len(SOURCES)
    assert set().union(*map(set, shares)) == set(SOURCES)
    for s in shares:
        assert s == sorted(s, key=SOURCES.index)


def test_shares_are_balanced() -> None:
    """1000 sources over 4 members: each share within 250 ± 5 sd of Binomial(1000, 1/4) (181..319)."""
    lo, hi = _band(len(SOURCES), 1 / 4)
    sizes = [len(share(SOURCES, Shard(k, 4))) for k in range(1, 5)]
    print(f"shares of 1000 sources over 4 members: {sizes} (band {lo:.0f}..{hi:.0f})")
    assert all(lo <= size <= hi for size in sizes), sizes


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])
def test_a_new_member_takes_about_its_share_and_nothing_else_moves(n: int) -> None:
    """From N to N+1 members, only sources now owned by member N+1 move: about 1/(N+1) of them."""
    before = {s: owner(s, n) for s in SOURCES}
    after = {s: owner(s, n + 1) for s in SOURCES}
    moved = [s for s in SOURCES if before[s] != after[s]]
    assert all(after[s] == n + 1 for s in moved)
    assert [s for s in SOURCES if after[s] == n + 1] == moved
    lo, hi = _band(len(SOURCES), 1 / (n + 1))
    print(f"{n} -> {n + 1} members: {len(moved)} of 1000 sources moved (expected {1000 / (n + 1):.0f}, band {lo:.0f}..{hi:.0f})")
    assert lo <= len(moved) <= hi


def test_the_split_is_stable_across_processes() -> None:
    """BLAKE2b, not hash(): these owners are the same on every host and Python (a fleet agrees)."""
    assert [owner(f"station-{i}", 3) for i in range(8)] == [owner(f"station-{i}", 3) for i in range(8)]
    import subprocess
    import sys

    code = "from genrecast.daemon.shard import owner; print([owner(f'station-{i}', 3) for i in range(50)])"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123"}).stdout.strip()
    assert other == str([owner(f"station-{i}", 3) for i in range(50)])


@pytest.mark.parametrize("text, hostname, expected", [
    ("1/2", None, Shard(1, 2)), (" 2 / 2 ", None, Shard(2, 2)), ("1-of-3", None, Shard(1, 3)),
    ("auto/3", "genrecast-0", Shard(1, 3)), ("auto/3", "genrecast-2", Shard(3, 3)), ("auto-of-1", "a-b-0", Shard(1, 1)),
])
def test_parse_shard(text: str, hostname: str | None, expected: Shard) -> None:
    assert parse_shard(text, hostname) == expected


@pytest.mark.parametrize("text, hostname, message", [
    ("3/2", None, "'3/2' must have K between 1 and N=2"), ("0/2", None, "must have K between 1 and N=2"),
    ("x", None, "'x' is not K/N"), ("1/0", None, "must have N between 1"), ("1/2/3", None, "is not K/N"),
    ("auto/3", "box", "needs a host name ending in -ORDINAL"), ("auto/3", "genrecast-3", "member 4, but N is 3"),
])
def test_bad_shards_say_why(text: str, hostname: str | None, message: str) -> None:
    with pytest.raises(ShardError, match=message):
        parse_shard(text, hostname)


def test_member_sources_keep_their_derived_names() -> None:
    """Unnamed URLs are stream-1, stream-2, ... by their place in the whole list, on every member."""
    urls = [f"http://127.0.0.1:9/{i}.mp3" for i in range(6)] + ["jazz=file:/x/jazz.wav"]
    members = [member_sources(load_config(None,
                                          {"sources": urls, "shard": f"{k}/3"}, env={})) for k in (1, 2, 3)]
    names = sorted(name for pairs in members for name, _ in pairs)
    assert names == sorted([f"stream-{i}" for i in range(1, 7)] + ["jazz"])
    everyone = dict(member_sources(load_config(None, {"sources": urls}, env={})))
    assert all(everyone[name] == spec for pairs in members for name, spec in pairs)


def test_config_reports_a_bad_shard_from_the_environment() -> None:
    config = load_config(None, env={"GENRECAST_SHARD": "5/4"})
    assert any(p.startswith("shard (env GENRECAST_SHARD): '5/4' must have K between 1 and N=4") for p in config.problems)


@pytest.mark.parametrize("value, why", [("3/2", "'3/2' must have K between 1 and N=2"), ("x", "'x' is not K/N")])
def test_run_with_a_bad_shard_is_one_line(value: str, why: str) -> None:
    from helpers import run_cli

    for args, env in ((["run", "--shard", value, "--source", "mic"], {}), (["run", "--source", "mic"], {"GENRECAST_SHARD": value})):
        proc = run_cli(*args, env={**os.environ, **env}, timeout=60)
        origin = "flag" if not env else "env GENRECAST_SHARD"
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith(f"genrecast: error: invalid configuration: shard ({origin}): {why}")


def test_the_log_names_the_member_auto_resolved_to(monkeypatch, caplog) -> None:
    import logging
    import socket

    from genrecast.daemon.config import load_config
    from genrecast.daemon.service import _log_share

    monkeypatch.setattr(socket, "gethostname", lambda: "genrecast-2")
    config = load_config(None, {"shard": "auto/3", "sources": ["a=mic", "b=mic:x", "c=mic:y"]}, env={})

    class Source:
        name = "b"

    with caplog.at_level(logging.INFO, logger="genrecast.daemon"):
        _log_share(config, [Source()], "model-x")
    assert "shard auto/3 (member 3/3): listening to 1 of the 3 configured sources (b)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="genrecast.daemon"):  # a systemd instance's K-of-N, as written
        _log_share(load_config(None, {"shard": "3-of-3", "sources": ["a=mic", "b=mic:x", "c=mic:y"]}, env={}), [Source()], "m")
    assert "shard 3-of-3: listening to 1 of the 3 configured sources (b)" in caplog.text


@pytest.mark.parametrize("instance", ["foo", "1-2"])
def test_a_bad_template_instance_is_told_the_k_of_n_form(instance: str) -> None:
    """genrecast@foo (or genrecast@1/2, which systemctl escapes to genrecast@1-2) runs
    `run --shard INSTANCE`: the error said "is not K/N (e.g. 2/3...)", and 2/3 is what systemd
    mangles; it names the form an instance takes."""
    from helpers import run_cli

    proc = run_cli("run", "--shard", instance, "--daemon-id", f"box-{instance}", "--source", "mic", timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"genrecast: error: invalid configuration: shard (flag): '{instance}' is not K/N, K-of-N or "
                                  "auto/N (e.g. 2/3 or 2-of-3: member 2 of 3; the systemd template's instance is K-of-N: "
                                  "genrecast@2-of-3)"), proc.stderr
