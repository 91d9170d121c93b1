#!/usr/bin/env python3
"""Writes the committed seed corpora under corpus/<target>/ (small, meaningful inputs).

Rerun after changing it: python3 fuzz/seeds.py. Files the fuzzer found are not kept here;
tests/fuzz/run.sh keeps its growing corpus under $HOME/.cache.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "fuzz-token"  # src/http/server.rs (TOKENS[0])
NEXT_TOKEN = "fuzz-next-token"  # the token file's second line, accepted too


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- key_decode: raw keys and path segments, accepted and refused -------------------------
KEYS = {
    "book-a": "a", "book-z": "z", "user42": "user:42", "cafe": "caf\u00e9", "dots3": "...",
    "a-dot-b": "a.b", "space-enc": "k%20x", "emoji-enc": "%F0%9F%98%80", "max-len": "k" * 250,
    "too-long": "k" * 251, "dotdot": "..", "dot": ".", "dotdot-enc": "%2E%2E",
    "traversal": "..%2F..%2Fetc%2Fpasswd", "traversal-lower": "..%2f..%2fetc%2fpasswd",
    "traversal-raw": "../../etc/passwd", "slash-enc": "a%2Fb", "comma-enc": "a%2Cb",
    "nul-enc": "a%00b", "newline-enc": "%0A", "del-enc": "%7F", "nel-enc": "%C2%85",
    "bad-percent": "%zz%2", "overlong-enc": "%C0%AF",
}
for name, text in KEYS.items():
    write("key_decode", name, text)
write("key_decode", "not-utf8", b"\xff\xfe")


# --- bulk_decode: the KVB1 stream (kvproto/src/bulk.rs) ------------------------------------
def rec(key, version, value=None):
    k = key.encode() if isinstance(key, str) else key
    if value is None:
        return struct.pack(">BH", 2, len(k)) + k + struct.pack(">Q", version)
    return struct.pack(">BH", 1, len(k)) + k + struct.pack(">QI", version, len(value)) + value


def stream(records, count=None):
    body = b"".join(records)
    return b"KVB1" + body + struct.pack(">BQ", 0, len(records) if count is None else count)


three = [rec("a", 1, b"A"), rec("b", 7), rec("c", 9, b"")]
BULK = {
    "empty": stream([]),
    "one": stream([rec("user:42", 3, b"hello")]),
    "value-tombstone-empty": stream(three),
    "binary-value": stream([rec("k", 2**64 - 1, bytes(range(256)))]),
    "max-key": stream([rec("k" * 250, 1, b"v")]),
    "max-value": stream([rec("big", 1, b"x" * 1024)]),
    "too-large-value": stream([rec("big", 1, b"x" * 1025)]),
    "truncated-no-trailer": stream(three)[:-9],
    "truncated-mid-record": stream(three)[:12],
    "truncated-magic": b"KV",
    "bad-magic": b"nope" + stream([])[4:],
    "lying-trailer": stream(three, count=5),
    "trailing-data": stream([]) + b"\x01",
    "dotdot-key": stream([rec("..", 1, b"v")]),
    "slash-key": stream([rec("a/b", 1, b"v")]),
    "not-utf8-key": stream([rec(b"\xff", 1, b"v")]),
    "empty-key": stream([rec("", 1, b"v")]),
    "unknown-kind": b"KVB1\x09",
}
for name, data in BULK.items():
    write("bulk_decode", name, data)


# --- http_router: requests as they arrive on the socket -----------------------------------
def req(line, headers=(), body=b""):
    head = line + "\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n"
    return head.encode() + body


AUTH = f"Authorization: Bearer {TOKEN}"
HTTP = {
    "book-save": req("GET /save/a/hello HTTP/1.1"),
    "book-save-encoded": req("GET /save/k%20x/x%20y HTTP/1.1"),
    "book-load": req("GET /load/a HTTP/1.1"),
    "book-all-keys": req("GET /allKeys HTTP/1.1"),
    "book-traversal": req("GET /load/..%2F..%2Fetc%2Fpasswd HTTP/1.1"),
    "book-traversal-raw": req("GET /load/../etc/passwd HTTP/1.1"),
    "book-save-three-segments": req("GET /save/a/b/c HTTP/1.1"),
    "v1-put": req("PUT /v1/keys/user:42 HTTP/1.1", ["Content-Type: application/octet-stream"], b"\x00\xffraw"),
    "v1-put-if-absent": req("PUT /v1/keys/k HTTP/1.1", ["If-None-Match: *"], b"v"),
    "v1-put-if-match": req("PUT /v1/keys/k HTTP/1.1", ['If-Match: "1"'], b"v2"),
    "v1-put-bad-if-match": req("PUT /v1/keys/k HTTP/1.1", ["If-Match: 1"], b"v"),
    "v1-put-too-large": req("PUT /v1/keys/big HTTP/1.1", [], b"x" * 1025),
    "v1-get": req("GET /v1/keys/user:42 HTTP/1.1"),
    "v1-get-traversal": req("GET /v1/keys/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd HTTP/1.1"),
    "v1-get-nul": req("GET /v1/keys/a%00b HTTP/1.1"),
    "v1-head": req("HEAD /v1/keys/nope HTTP/1.1"),
    "v1-delete": req("DELETE /v1/keys/user:42 HTTP/1.1"),
    "v1-list": req("GET /v1/keys?prefix=user&after=user:1&limit=2 HTTP/1.1"),
    "v1-list-bad-limit": req("GET /v1/keys?limit=-1 HTTP/1.1"),
    "v1-info": req("GET /v1/info HTTP/1.1"),
    "v1-topology": req("GET /v1/topology HTTP/1.1"),
    "v1-unknown-route": req("GET /v1/nope HTTP/1.1"),
    "v1-method-not-allowed": req("POST /v1/keys/k HTTP/1.1", [], b"v"),
    "admin-export": req("GET /v1/admin/export?scope=all HTTP/1.1", [AUTH]),
    "admin-export-no-token": req("GET /v1/admin/export HTTP/1.1"),
    "admin-import": req("POST /v1/admin/import?mode=overwrite HTTP/1.1",
                        [AUTH, "Content-Type: application/x-kvstore-bulk"], BULK["value-tombstone-empty"]),
    "admin-import-if-absent": req("POST /v1/admin/import?mode=if-absent HTTP/1.1", [AUTH], BULK["one"]),
    "admin-import-truncated": req("POST /v1/admin/import HTTP/1.1", [AUTH], BULK["truncated-no-trailer"]),
    "admin-cleanup": req("POST /v1/admin/cleanup HTTP/1.1", [AUTH]),
    "admin-internal-get": req("GET /v1/internal/keys/a HTTP/1.1", [AUTH]),
    "admin-topology-push": req("PUT /v1/admin/topology HTTP/1.1", [AUTH, "Content-Type: application/json"],
                               b'{"epoch":1,"sharding":"modulo","shards":1,"peers":["http://127.0.0.1:1"]}'),
    "forwarded-headers": req("GET /v1/keys/a HTTP/1.1", [AUTH, "x-kv-forwarded-epoch: 1", "x-kv-hops: 2",
                                                         "x-kv-read-through: 0"]),
    "healthz": req("GET /healthz HTTP/1.1"),
    "metrics": req("GET /metrics HTTP/1.1"),
    "unknown-route": req("GET /nope HTTP/1.1"),
}
# Servers (src/http/server.rs, Kind): plain (no topology), stable (epoch 6, 2 shards), copy
# (epoch 7, moving 1 -> 2 shards), awaiting (--require-topology, no map yet). Key "a" is owned by
# shard 1 under both topologies, "b" by shard 0 (the servers are shard 0).
def on(server):
    return f"x-fuzz-server: {server}"


NEXT = f"Authorization: Bearer {NEXT_TOKEN}"
one = stream([rec("moved", 3, b"v")])
HTTP.update({
    # Fenced imports and cleanups (kvproto/src/fence.rs): epoch=E&phase=copy|stable.
    "fence-import-copy-valid": req("POST /v1/admin/import?mode=if-absent&epoch=7&phase=copy HTTP/1.1",
                                   [on("copy"), AUTH], one),
    "fence-import-copy-stale-epoch": req("POST /v1/admin/import?epoch=6&phase=copy HTTP/1.1",
                                         [on("copy"), AUTH], one),
    "fence-import-copy-wrong-phase": req("POST /v1/admin/import?epoch=7&phase=stable HTTP/1.1",
                                         [on("copy"), AUTH], one),
    "fence-import-unfenced-on-topology": req("POST /v1/admin/import HTTP/1.1", [on("stable"), AUTH], one),
    "fence-import-on-plain": req("POST /v1/admin/import?epoch=1&phase=copy HTTP/1.1", [AUTH], one),
    "fence-import-bad-epoch": req("POST /v1/admin/import?epoch=x&phase=copy HTTP/1.1", [on("copy"), AUTH], one),
    "fence-import-epoch-only": req("POST /v1/admin/import?epoch=7 HTTP/1.1", [on("copy"), AUTH], one),
    "fence-import-bad-phase": req("POST /v1/admin/import?epoch=7&phase=handoff HTTP/1.1", [on("copy"), AUTH], one),
    "fence-import-huge-epoch": req("POST /v1/admin/import?epoch=18446744073709551616&phase=copy HTTP/1.1",
                                   [on("copy"), AUTH], one),
    "fence-cleanup-stable-valid": req("POST /v1/admin/cleanup?epoch=6&phase=stable HTTP/1.1", [on("stable"), AUTH]),
    "fence-cleanup-stable-old-epoch": req("POST /v1/admin/cleanup?epoch=5&phase=stable HTTP/1.1", [on("stable"), AUTH]),
    "fence-cleanup-during-copy": req("POST /v1/admin/cleanup?epoch=7&phase=copy HTTP/1.1", [on("copy"), AUTH]),
    "fence-cleanup-on-plain": req("POST /v1/admin/cleanup?epoch=6&phase=stable HTTP/1.1", [AUTH]),
    "fence-cleanup-phase-only": req("POST /v1/admin/cleanup?phase=stable HTTP/1.1", [on("stable"), AUTH]),
    # --require-topology before the first map: data routes 503 misdirected, the rest answers.
    "awaiting-v1-get": req("GET /v1/keys/b HTTP/1.1", [on("awaiting")]),
    "awaiting-v1-put": req("PUT /v1/keys/b HTTP/1.1", [on("awaiting")], b"v"),
    "awaiting-book-save": req("GET /save/b/v HTTP/1.1", [on("awaiting")]),
    "awaiting-list": req("GET /v1/keys HTTP/1.1", [on("awaiting")]),
    "awaiting-info": req("GET /v1/info HTTP/1.1", [on("awaiting")]),
    "awaiting-import": req("POST /v1/admin/import HTTP/1.1", [on("awaiting"), AUTH], one),
    # Forwarding headers: 401 without an accepted token, 508 at the hop limit, 400 when garbled.
    "fwd-no-token": req("GET /v1/keys/b HTTP/1.1", ["x-kv-hops: 1"]),
    "fwd-wrong-token": req("PUT /v1/keys/a HTTP/1.1", ["Authorization: Bearer nope", "x-kv-forwarded-epoch: 9"], b"v"),
    "fwd-no-token-book": req("GET /save/a/v HTTP/1.1", [on("stable"), "x-kv-read-through: 1"]),
    "fwd-hop-limit": req("GET /v1/keys/a HTTP/1.1", [on("stable"), AUTH, "x-kv-hops: 3"]),
    "fwd-hop-limit-put": req("PUT /v1/keys/a HTTP/1.1", [on("copy"), AUTH, "x-kv-hops: 99"], b"v"),
    "fwd-hop-forged-no-token": req("PUT /v1/keys/a HTTP/1.1", [on("stable"), "x-kv-hops: 0"], b"v"),
    "fwd-hops-huge": req("GET /v1/keys/a HTTP/1.1", [on("stable"), AUTH, "x-kv-hops: 99999999999999999999"]),
    "fwd-hops-negative": req("GET /v1/keys/a HTTP/1.1", [on("stable"), AUTH, "x-kv-hops: -1"]),
    "fwd-next-token-local": req("GET /v1/keys/b HTTP/1.1", [on("stable"), NEXT, "x-kv-hops: 2",
                                                            "x-kv-forwarded-epoch: 6"]),
    "fwd-newer-epoch-read-through": req("GET /v1/keys/a HTTP/1.1", [on("stable"), AUTH,
                                        "x-kv-forwarded-epoch: 7", "x-kv-read-through: 1"]),
    "fwd-read-through-out-of-range": req("GET /v1/keys/a HTTP/1.1", [on("copy"), AUTH,
                                         "x-kv-forwarded-epoch: 8", "x-kv-read-through: 4294967295"]),
    "stable-forward-unreachable": req("GET /v1/keys/a HTTP/1.1", [on("stable")]),
    "stable-local": req("PUT /v1/keys/b HTTP/1.1", [on("stable")], b"v"),
    # The token file's second line (a rotation in progress) is accepted as well.
    "admin-next-token": req("GET /v1/admin/export/count?scope=moving HTTP/1.1", [on("stable"), NEXT]),
    "admin-token-padded": req("GET /v1/admin/export HTTP/1.1", [f"Authorization: Bearer   {TOKEN}  "]),
    "admin-token-lowercase-scheme": req("GET /v1/admin/export HTTP/1.1", [f"Authorization: bearer {TOKEN}"]),
    "admin-internal-next-token": req("GET /v1/internal/keys/b HTTP/1.1", [on("copy"), NEXT]),
    "admin-topology-too-large": req("PUT /v1/admin/topology HTTP/1.1", [AUTH], b"{" + b" " * 3000 + b"}"),
})
# Sequences: one input, several requests (src/http/request.rs, SEPARATOR).
SEP = b"\n--next--\n"
HTTP.update({
    "seq-put-get-delete": SEP.join([HTTP["v1-put"], HTTP["v1-get"], HTTP["v1-delete"], HTTP["v1-get"]]),
    "seq-put-if-match": SEP.join([req("PUT /v1/keys/cas HTTP/1.1", [], b"1"),
                                  req("PUT /v1/keys/cas HTTP/1.1", ['If-Match: "1"'], b"2")]),
    "seq-import-max-version-then-put": SEP.join([
        req("POST /v1/admin/import?mode=overwrite HTTP/1.1", [AUTH],
            stream([rec("edge", 2**64 - 2, b"old")])),
        req("PUT /v1/keys/edge HTTP/1.1", [], b"new"),
        req("PUT /v1/keys/edge HTTP/1.1", [], b"newer")]),
    "seq-tombstone-import-then-load": SEP.join([
        req("POST /v1/admin/import HTTP/1.1", [AUTH], stream([rec("gone", 5)])),
        req("GET /load/gone HTTP/1.1"), req("GET /v1/internal/keys/gone HTTP/1.1", [AUTH])]),
    "seq-fenced-import-refused-then-read": SEP.join([
        req("POST /v1/admin/import?epoch=6&phase=copy HTTP/1.1", [on("copy"), AUTH], stream([rec("b", 9, b"new")])),
        req("GET /v1/keys/b HTTP/1.1", [on("copy")]),
        req("POST /v1/admin/import?epoch=7&phase=copy HTTP/1.1", [on("copy"), AUTH], stream([rec("b", 9, b"new")])),
        req("GET /v1/internal/keys/b HTTP/1.1", [on("copy"), AUTH])]),
    "seq-stable-put-cleanup-list": SEP.join([
        req("PUT /v1/keys/b HTTP/1.1", [on("stable")], b"1"),
        req("POST /v1/admin/import?epoch=6&phase=stable HTTP/1.1", [on("stable"), AUTH], stream([rec("a", 4, b"x")])),
        req("POST /v1/admin/cleanup?epoch=6&phase=stable HTTP/1.1", [on("stable"), AUTH]),
        req("GET /v1/keys HTTP/1.1", [on("stable")])]),
    "seq-save-load-list": SEP.join([HTTP["book-save"], HTTP["book-load"], HTTP["book-all-keys"], HTTP["v1-list"]]),
})
for name, data in HTTP.items():
    write("http_router", name, data)


# --- journal_verify: fjall journal files (kvserver/src/storage/journal_frame.rs) -----------
# Flag byte first: 1 = the harness writes the right xxh3 into each batch end (zeros here).
JSEP = b"\n--next-journal--\n"  # src/journal.rs, SEPARATOR


def item(key, value=b"", vtype=0, compression=0, keyspace=1, disk=None):
    disk = value if disk is None else disk
    return (struct.pack("<BBBQHII", 2, vtype, compression, keyspace, len(key), len(value), len(disk))
            + key + disk)


def clear(keyspace=1):
    return struct.pack("<BQ", 4, keyspace)


def batch(seqno, entries=None, count=None):
    entries = [item(b"k%d" % seqno, b"value")] if entries is None else entries
    n = len(entries) if count is None else count
    return (struct.pack("<BIQ", 1, n, seqno) + b"".join(entries)
            + struct.pack("<BQ", 3, 0) + b"FJL\x03")


def journals(*files, fix=True):
    return bytes([1 if fix else 0]) + JSEP.join(files)


b1, b2, b3 = batch(1), batch(2), batch(3)
JOURNAL = {
    "empty": journals(b""),
    "one-batch": journals(b1),
    "three-batches": journals(b1 + b2 + b3),
    "preallocated-zeros": journals(b1 + b2 + bytes(200)),
    "multi-item-clear-tombstone": journals(batch(4, [item(b"a", b"1"), item(b"b", vtype=1), clear(),
                                                     item(b"c", b"xx", compression=1, disk=b"z")])),
    "torn-tail": journals(b1 + b2 + b3[:20]),
    "torn-tail-then-zeros": journals(b1 + b2[:30] + bytes(100)),
    "flipped-middle": journals(b1 + b"\xff" + b2[1:] + b3),
    "garbage-then-batch": journals(b1 + b"garbage" + b3),
    "seqno-repeats": journals(b1 + batch(1)),
    "seqno-goes-back": journals(batch(5) + b2),
    "count-too-large": journals(batch(1, count=0xFFFFFFFF)),
    "bad-value-type": journals(batch(1, [item(b"k", b"v", vtype=3)])),
    "uncompressed-length-mismatch": journals(batch(1, [item(b"k", b"value", disk=b"va")])),
    "checksum-wrong": journals(b1 + b2, fix=False),
    "two-files": journals(b1 + b2, b3),
    "two-files-order-across": journals(b1 + b3, b2),
    "two-files-torn-first": journals(b1 + b2[:10], b3),
    "two-files-torn-last": journals(b1, b2 + b3[:25]),
    "two-files-empty-second": journals(b1, b""),
    "three-files": journals(b1, b2, b3),
    "garbage-then-batch-in-later-file": journals(b1 + b"\x07junk", b"junk" + b3),
}
for name, data in JOURNAL.items():
    write("journal_verify", name, data)

total = sum(
    os.path.getsize(os.path.join(dp, f))
    for dp, _, fs in os.walk(os.path.join(HERE, "corpus")) for f in fs
)
print(f"seeds written: {len(KEYS) + 1} key, {len(BULK)} bulk, {len(HTTP)} http, "
      f"{len(JOURNAL)} journal; {total} bytes")
