"""A fleet's split of the sources: which member (``--shard K/N``) listens to which source.

Rendezvous, or highest-random-weight, hashing (Thaler & Ravishankar, "A Name-Based Mapping
Scheme for Rendezvous", University of Michigan technical report CSE-TR-316-96, 1996; also
"Using name-based mappings to increase hit rates", IEEE/ACM Trans. Networking 6(1), 1998):
every member k of 1..N scores every source id with a hash of (k, id), and a source belongs
to the member with the highest score. Each member decides alone from the same configuration,
with no coordinator; the shares are disjoint and cover every source; and going from N to
N+1 members moves only the sources the new member now wins, about 1/(N+1) of them, all to
the new member (the others' scores do not change).

The hash is BLAKE2b (:mod:`hashlib`), stable across processes, hosts and Python versions,
unlike :func:`hash` (salted per process). A source's id is its name (given with
``NAME=SPEC``, or derived from the SPEC: see :mod:`genrecast.daemon.naming`).

``K`` may be ``auto``: the member number then comes from the host name's ordinal suffix, as a
Kubernetes StatefulSet names its pods (``genrecast-0`` is member 1 of N, ``genrecast-2`` member 3).
"""

from __future__ import annotations

import hashlib
import re
import socket
from dataclasses import dataclass
from typing import Sequence, TypeVar

T = TypeVar("T")

MAX_MEMBERS = 10_000
_SPEC = re.compile(r"^\s*(?P<k>\d+|auto)\s*(?:/|-of-)\s*(?P<n>\d+)\s*$")
_ORDINAL = re.compile(r"-(\d+)$")


class ShardError(ValueError):
    """A shard spec that cannot be used; ``why`` says what is wrong with it and the expected form."""

    def __init__(self, text: str, why: str) -> None:
        super().__init__(f"shard {text!r} {why}")
        self.why = why


@dataclass(frozen=True)
class Shard:
    """Member ``k`` (1-based) of a fleet of ``n`` members."""

    k: int
    n: int

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"


def parse_shard(text: str, hostname: str | None = None) -> Shard:
    """``K/N`` (or ``K-of-N``, as in a systemd instance name) with 1 <= K <= N; ``auto/N`` takes
    K from the trailing ``-ORDINAL`` of ``hostname`` (default: this host's name) plus one.

    Raises:
        ShardError: anything else, with the expected form in the message.
    """
    match = _SPEC.match(text or "")
    if match is None:
        raise ShardError(text, "is not K/N, K-of-N or auto/N (e.g. 2/3 or 2-of-3: member 2 of 3; "
                         "the systemd template's instance is K-of-N: genrecast@2-of-3)")
    n = int(match["n"])
    if not 1 <= n <= MAX_MEMBERS:
        raise ShardError(text, f"must have N between 1 and {MAX_MEMBERS}")
    if match["k"] == "auto":
        host = socket.gethostname().split(".")[0] if hostname is None else hostname
        ordinal = _ORDINAL.search(host)
        if ordinal is None:
            raise ShardError(text, f"needs a host name ending in -ORDINAL for auto, as a StatefulSet pod's "
                             f"(genrecast-0), not {host!r}; give K/N instead")
        k = int(ordinal.group(1)) + 1
        if k > n:
            raise ShardError(text, f"makes host {host!r} member {k}, but N is {n}; make N the StatefulSet's replicas")
        return Shard(k, n)
    k = int(match["k"])
    if not 1 <= k <= n:
        raise ShardError(text, f"must have K between 1 and N={n} (members count from 1)")
    return Shard(k, n)


def shard_problem(text: str) -> str | None:
    """Why ``text`` is not a usable shard spec here, or None (empty means no sharding)."""
    if not text:
        return None
    try:
        parse_shard(text)
    except ShardError as exc:
        return exc.why
    return None


def score(member: int, source_id: str) -> int:
    """The rendezvous weight of ``source_id`` for ``member``: the first 8 bytes of
    BLAKE2b(``"member\\0source_id"``) as an unsigned integer (0 .. 2**64-1)."""
    digest = hashlib.blake2b(f"{member}\0{source_id}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(source_id: str, n: int) -> int:
    """The member (1..n) with the highest score for ``source_id``."""
    return max(range(1, n + 1), key=lambda member: score(member, source_id))


def share(items: Sequence[T], shard: Shard, key=lambda item: item) -> list[T]:
    """The items member ``shard.k`` of ``shard.n`` owns, in their order; ``key(item)`` is the source id."""
    return [item for item in items if owner(key(item), shard.n) == shard.k]


def member_sources(config) -> list[tuple[str, str]]:
    """(name, spec) of the configured sources this member listens to: all of them without a
    ``shard`` setting, else its rendezvous share (names are derived before the split, so a
    source keeps its name, e.g. ``stream-3``, whichever member runs it).

    Raises:
        ShardError: the ``shard`` setting cannot be read (``config check`` reports it first).
    """
    from genrecast.daemon.naming import named_sources

    named = named_sources(config["sources"])
    if not config["shard"]:
        return named
    return share(named, parse_shard(config["shard"]), key=lambda pair: pair[0])
