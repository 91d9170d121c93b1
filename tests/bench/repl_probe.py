"""The node-side measurements of tests/bench/replication.sh (run on the cluster's node; failover
and catchup as root). Each prints one JSON object on stdout, progress on stderr, and exits
non-zero with the reason when it cannot measure.

Usage: repl_probe.py settled  NS STORE SHARDS FACTOR TIMEOUT_S
       repl_probe.py failover NS STORE SHARDS FACTOR ROUNDS                   (repl_failover.py)
       repl_probe.py catchup  NS STORE SHARDS FACTOR SHARD READY STOP LIMIT_S (repl_catchup.py)
       repl_probe.py rebuild  NS STORE SHARDS FACTOR SHARD LIMIT_S            (repl_rebuild.py)
       repl_probe.py shard-keys PREFIX COUNT SHARD SHARDS    (keys of kvclient load's on a shard)
"""
import json
import signal
import sys

import repl_catchup
import repl_failover
import repl_rebuild
from repl_lib import BenchError, Store, keys_of_shard, require_root


def settled(ns: str, name: str, shards: int, factor: int, limit_s: float) -> dict:
    store = Store(ns, name, shards, factor)
    return {str(s): store.wait_settled(s, limit_s, max_lag=0)[0] for s in range(shards)}


def main(argv: list) -> dict:
    kind, args = (argv[0], argv[1:]) if argv else ("", [])
    if kind == "shard-keys" and len(args) == 4:
        return {"keys": keys_of_shard(args[0], int(args[1]), int(args[2]), int(args[3]))}
    if len(args) < 4:
        sys.exit(__doc__)
    ns, name, shards, factor = args[0], args[1], int(args[2]), int(args[3])
    rest = args[4:]
    if kind == "settled" and len(rest) == 1:
        return settled(ns, name, shards, factor, float(rest[0]))
    if kind == "failover" and len(rest) == 1:
        require_root()
        return repl_failover.run(ns, name, shards, factor, int(rest[0]))
    if kind == "catchup" and len(rest) == 4:
        require_root()
        return repl_catchup.run(ns, name, shards, factor, int(rest[0]), rest[1], rest[2], float(rest[3]))
    if kind == "rebuild" and len(rest) == 2:
        return repl_rebuild.run(ns, name, shards, factor, int(rest[0]), float(rest[1]))
    sys.exit(__doc__)


if __name__ == "__main__":
    # SIGTERM as an exception, so a probe stopped early still heals the cut it made.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("repl_probe: stopped by SIGTERM"))
    try:
        print(json.dumps(main(sys.argv[1:]), indent=1))
    except BenchError as e:
        sys.exit(f"repl_probe {' '.join(sys.argv[1:2])}: {e}")
