"""The book's rebalance, as its rebalance pod does it: for every key on every old server
(/allKeys), if its modulo owner changes, read it (/load) from the old server and write it
(/save) to the new one, one HTTP request each, with urllib (a new connection per request).
Usage: migration_book.py FROM TO MAX_KEYS URL...   Prints "<keys copied> <seconds>"."""
import sys
import time
import urllib.parse
import urllib.request


def owner(key: str, shards: int) -> int:
    # kvproto's modulo: the key's bytes as a big-endian integer, mod the shard count.
    return int.from_bytes(key.encode(), "big") % shards


def get(url: str) -> str:
    with urllib.request.urlopen(url) as resp:
        return resp.read().decode()


def main() -> None:
    old_count, new_count, limit = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    servers = sys.argv[4:]
    moving = []
    for i in range(old_count):
        for key in get(f"{servers[i]}/allKeys").split(","):
            if key and owner(key, old_count) == i and owner(key, new_count) != i:
                moving.append((i, owner(key, new_count), key))
    moving = moving[:limit]
    started = time.monotonic()
    for old, new, key in moving:
        q = urllib.parse.quote(key, safe="")
        value = get(f"{servers[old]}/load/{q}")
        get(f"{servers[new]}/save/{q}/{urllib.parse.quote(value, safe='')}")
    print(len(moving), time.monotonic() - started)


if __name__ == "__main__":
    main()
