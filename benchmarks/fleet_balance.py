"""Figure: the fleet's balance. How evenly ``--shard K/N`` splits the sources (rendezvous hashing,
:mod:`genrecast.daemon.shard`), and how many move when a member joins; plus the cost of the split.

Sources are 10,000 station-like names (``station-0`` ...). For a uniform hash each share is
Binomial(S, 1/N): its standard deviation is ``sqrt(S (1/N)(1 - 1/N))``, about 1.7 % of the mean for
S = 10,000 and N = 4; the largest of N shares sits a few of those above the mean.
"""

from __future__ import annotations

import math
import time

from benchmarks.common import Context, row

MEMBERS = range(2, 9)


def run(ctx: Context) -> list[dict]:
    from genrecast.daemon.shard import owner

    sources = [f"station-{i}" for i in range(1000 if ctx.quick else 10_000)]
    count = len(sources)
    started = time.perf_counter()
    owners = {n: [owner(s, n) for s in sources] for n in [*MEMBERS, max(MEMBERS) + 1]}
    split_ms = (time.perf_counter() - started) * 1000 / sum(len(v) for v in owners.values())
    largest, moved_ratio, only_to_new, per_n = [], [], True, {}
    for n in MEMBERS:
        sizes = [owners[n].count(k) for k in range(1, n + 1)]
        largest.append(max(sizes) / (count / n))
        moved = [(a, b) for a, b in zip(owners[n], owners[n + 1]) if a != b]
        only_to_new &= all(b == n + 1 for _, b in moved)
        moved_ratio.append(len(moved) / (count / (n + 1)))
        sd = math.sqrt(count * (1 / n) * (1 - 1 / n))
        per_n[n] = {"shares": sizes, "largest_over_mean": round(max(sizes) / (count / n), 4),
                    "sd_of_a_share": round(sd, 1), "moved_to_new_member": len(moved), "expected_moved": round(count / (n + 1))}
    worst = max(largest)
    return [
        row("fleet", f"largest share / mean share, N = 2..8, {count} sources", [worst], "ratio",
            target="<= 1 + 5 sd/mean", met=worst <= 1 + 5 * math.sqrt((1 - 1 / 8) * 8 / count), per_members=per_n,
            note="the worst N; per_members in results.json has every share"),
        row("fleet", f"sources moved N -> N+1 / (S/(N+1)), N = 2..8", moved_ratio, "ratio", target="about 1, all to the new member",
            met=only_to_new, note=f"worst {max(moved_ratio):.3f}, best {min(moved_ratio):.3f}; every moved source went to the new member: {only_to_new}"),
        row("fleet", "split cost per source and member count", [split_ms * 1000], "us", note="one owner() call: N BLAKE2b hashes"),
    ]
