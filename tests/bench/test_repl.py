"""Self-test of the replication benchmark's pure parts (no cluster): key ownership, the judgement
of a shard's Raft statuses, the netns rules, the probe's arithmetic, the report and its section
in BENCHMARKS.md. Run: python3 tests/bench/test_repl.py"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import repl_catchup  # noqa: E402
import repl_failover  # noqa: E402
import repl_lib  # noqa: E402
import repl_netcut  # noqa: E402
import repl_report  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def status(pod, node_id, state, term, leader, members=()):
    return {"nodeId": node_id, "state": state, "term": term,
            "leader": {"pod": leader, "nodeId": "1"}, "members": list(members),
            "lastLogIndex": 100, "committed": 100, "applied": 100}


def shard(lead="kv-0", term=3, lag=0):
    copies = ["kv-0", "kv-r1-0", "kv-r2-0"]
    members = [{"nodeId": str(i + 1), "pod": c, "role": "voter", "matched": 100 - lag,
                "lag": 0 if c == lead else lag} for i, c in enumerate(copies)]
    return copies, {c: status(c, str(i + 1), "leader" if c == lead else "follower", term, lead,
                              members if c == lead else ())
                    for i, c in enumerate(copies)}


class Keys(unittest.TestCase):
    def test_modulo_is_the_keys_bytes_as_a_big_endian_integer(self):
        self.assertEqual(repl_lib.modulo_owner("ab", 7), 24930 % 7)
        self.assertEqual(repl_lib.modulo_owner("", 5), 0)

    def test_a_shards_key_is_owned_by_it_and_the_shares_add_up(self):
        for s in range(3):
            self.assertEqual(repl_lib.modulo_owner(repl_lib.key_of_shard("failover-", s, 3), 3), s)
        shares = [repl_lib.keys_of_shard("catchup-", 3000, s, 3) for s in range(3)]
        self.assertEqual(sum(shares), 3000)
        self.assertTrue(all(800 < x < 1200 for x in shares), shares)

    def test_copy_names_follow_the_contract(self):
        self.assertEqual(repl_lib.copy_pod("kv", 0, 2), "kv-2")
        self.assertEqual(repl_lib.copy_claim("kv", 1, 2), "data-kv-r1-2")


class Agreement(unittest.TestCase):
    def test_one_leader_followed_by_every_copy_is_agreed(self):
        copies, statuses = shard(lead="kv-r1-0")
        lead, lstatus, _ = repl_lib.agreed(copies, statuses)
        self.assertEqual(lead, "kv-r1-0")
        self.assertEqual(repl_lib.member(lstatus, "kv-r2-0")["nodeId"], "3")

    def test_silent_split_stale_or_unknown_copies_are_not_agreed(self):
        copies, statuses = shard()
        silent = dict(statuses, **{"kv-r2-0": None})
        self.assertIsInstance(repl_lib.agreed(copies, silent), str)
        two = dict(statuses, **{"kv-r1-0": dict(statuses["kv-r1-0"], state="leader")})
        self.assertIsInstance(repl_lib.agreed(copies, two), str)
        stale = dict(statuses, **{"kv-r2-0": dict(statuses["kv-r2-0"], term=2)})
        self.assertIsInstance(repl_lib.agreed(copies, stale), str)
        rebuilt = dict(statuses, **{"kv-r2-0": dict(statuses["kv-r2-0"], nodeId="99")})
        self.assertIsInstance(repl_lib.agreed(copies, rebuilt), str)

    def test_in_sync_needs_lag_0_and_everything_committed_applied(self):
        _, statuses = shard(lag=0)
        follower = statuses["kv-r1-0"]
        self.assertTrue(repl_catchup.in_sync(statuses["kv-0"], "kv-r1-0", follower))
        self.assertFalse(repl_catchup.in_sync(statuses["kv-0"], "kv-r1-0", dict(follower, applied=99)))
        self.assertFalse(repl_catchup.in_sync(statuses["kv-0"], "kv-r1-0", None))
        _, lagging = shard(lag=5)
        self.assertFalse(repl_catchup.in_sync(lagging["kv-0"], "kv-r1-0", follower))


class NetCut(unittest.TestCase):
    ROUTE = ("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n"
             "eth0\t00000000\t0101F40A\t0003\t0\t0\t0\t00000000\n"
             "eth0\t0001F40A\t00000000\t0001\t0\t0\t0\t00FFFFFF\n")

    def test_the_default_gateway_is_read_from_the_route_table(self):
        self.assertEqual(repl_netcut.gateway(self.ROUTE), "10.244.1.1")
        self.assertIsNone(repl_netcut.gateway(self.ROUTE.splitlines()[0] + "\n"))

    def test_without_a_default_route_the_first_gateway_is_the_node(self):
        # The local cluster's pods: their subnet, and the service and node ranges via the bridge.
        table = (
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
            "eth0\t00001CAC\t00000000\t0001\t0\t0\t0\t00FFFFFF\n"
            "eth0\t00001DAC\t01001CAC\t0003\t0\t0\t0\t0000FFFF\n"
        )
        self.assertEqual(repl_netcut.gateway(table), "172.28.0.1")

    def test_each_rule_is_deleted_and_checked_by_the_spec_it_was_inserted_with(self):
        for chain in ("INPUT", "OUTPUT"):
            ins, dele, chk = (repl_netcut.rule(chain, op, "10.0.0.1") for op in ("-I", "-D", "-C"))
            self.assertEqual(ins[2:5], ["-I", chain, "1"])
            self.assertEqual(ins[5:], dele[4:])
            self.assertEqual(chk[4:], dele[4:])
        self.assertEqual(repl_netcut.rule("INPUT", "-D", "10.0.0.1")[4:],
                         ["!", "-i", "lo", "!", "-s", "10.0.0.1/32", "-j", "DROP"])
        self.assertEqual(repl_netcut.rule("OUTPUT", "-D", "10.0.0.1")[4:],
                         ["!", "-o", "lo", "!", "-d", "10.0.0.1/32", "-j", "DROP"])


class Probe(unittest.TestCase):
    def test_only_writes_sent_after_the_kill_count(self):
        log = [(9.9, 10.3, 204), (10.0, 10.1, 503), (10.5, 12.0, 0), (12.0, 12.2, 503),
               (12.5, 12.6, 204), (12.6, 12.7, 204)]
        self.assertEqual(repl_failover.first_ack_after(log, 10.0), 2.6)
        self.assertIsNone(repl_failover.first_ack_after(log[:4], 10.0))
        self.assertEqual(repl_failover.answers_between(log, 10.0, 12.6), {"503": 2, "0": 1, "204": 1})

    def test_summary_gives_median_and_max(self):
        self.assertEqual(repl_lib.summary([3.0, 1.0, 2.0]), {"n": 3, "median": 2.0, "max": 3.0, "min": 1.0})
        self.assertEqual(repl_lib.summary([])["median"], None)


def load_report(rps, p99):
    return {"requests_per_s": rps, "p99_ms": p99, "errors": 0, "concurrency": 64,
            "verify": {"lost": 0, "wrong": 0, "unreadable": 0, "stale_reads": 0, "keys_checked": 10}}


def sample_work(work):
    t = {"durability": "batch", "factor": 3, "shards": 3, "keys": 100000, "duration_s": 30,
         "concurrency": 64, "value_bytes": 64,
         "factor1": {"get": load_report(20000, 5.0), "set": load_report(10000, 8.0)},
         "replicated": {"get": load_report(19000, 5.5), "set": load_report(4000, 20.0)}}
    files = {
        "throughput-batch.json": t,
        "failover.json": {"store": "three-batch", "interval_ms": 20.0, "failed_rounds": 0,
                          "rounds": [{"shard": 0, "failover_s": 2.1}, {"shard": 1, "failover_s": 4.5}],
                          "summary": repl_lib.summary([2.1, 4.5])},
        "catchup.json": {"follower": "three-batch-r1-0", "shard": 0, "cut_s": 90.0, "missed_entries": 1000,
                         "catchup_s": 3.5, "entries_per_s": 286, "restarts_during_cut": 0,
                         "keys_written": 3000, "keys_on_shard": 1000},
        "rebuild.json": {"copy": "three-batch-r1-0", "shard": 0, "keys": 1000, "new_node_id": "7",
                         "delete_to_running_s": 5.0, "delete_to_ready_s": 9.0, "delete_to_in_sync_s": 9.5,
                         "running_to_in_sync_s": 4.5, "keys_per_s": 222},
    }
    for name, obj in files.items():
        with open(os.path.join(work, name), "w", encoding="utf-8") as f:
            json.dump(obj, f)
    with open(os.path.join(work, "parts.tsv"), "w", encoding="utf-8") as f:
        f.write("throughput-batch\tok\t300\nfailover\tok\t200\ncatchup\tok\t100\nrebuild\tfailed (exit 1)\t50\n")


class Report(unittest.TestCase):
    def test_verdicts_compare_with_the_right_bound(self):
        self.assertEqual(repl_report.verdict("get_ratio", 0.95), "met")
        self.assertEqual(repl_report.verdict("get_ratio", 0.85), "missed")
        self.assertEqual(repl_report.verdict("failover_max_s", 3.9), "met")
        self.assertEqual(repl_report.verdict("failover_max_s", 4.1), "missed")
        self.assertIsNone(repl_report.verdict("catchup_s", None))

    def test_the_figures_of_a_run_are_gathered_and_judged(self):
        with tempfile.TemporaryDirectory() as work:
            sample_work(work)
            result = repl_report.gather(work)
        self.assertEqual(result["parts"]["rebuild"]["state"], "failed (exit 1)")
        lines = [repl_report.line(*f) for f in repl_report.figures(result)]
        self.assertIn("0.95× (target ≥ 0.9: met)", lines[0])
        self.assertIn("0.40× (target ≥ 0.5: missed)", lines[1])
        self.assertIn("4.5 (target ≤ 4: missed)", lines[3])
        self.assertIn("222 (target ≥ 100000: missed)", lines[-1])

    def test_benchmarks_md_gets_section_7_from_the_result(self):
        with tempfile.TemporaryDirectory() as work, tempfile.TemporaryDirectory() as out:
            sample_work(work)
            subprocess.run([sys.executable, os.path.join(HERE, "repl_report.py"), work,
                            os.path.join(out, "replication.json")], check=True, capture_output=True)
            md = subprocess.run([sys.executable, os.path.join(HERE, "render.py"), out], check=True,
                                capture_output=True, text=True).stdout
        section = md.split("## 7. Replication")[1].split("## Rerun")[0]
        self.assertIn("| batch | GET | 20 000 | 19 000 | 0.95× (≥ 0.9: **met**)", section)
        self.assertIn("median **3.3 s**", section)
        self.assertIn("missed **1 000 entries**", section)
        self.assertIn("Parts that did not measure: rebuild: failed (exit 1)", section)
        self.assertIn("factor 3 vs factor 1 (target ≥ 0.5×: **missed**)", md.split("## 1.")[0])

    def test_without_a_result_the_section_says_so(self):
        with tempfile.TemporaryDirectory() as out:
            md = subprocess.run([sys.executable, os.path.join(HERE, "render.py"), out], check=True,
                                capture_output=True, text=True).stdout
        self.assertIn("## 7. Replication: factor 3 beside factor 1 on the local cluster\n\n_Not in this run: not run._", md)


if __name__ == "__main__":
    unittest.main()
