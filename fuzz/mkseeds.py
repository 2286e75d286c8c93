#!/usr/bin/env python3
"""Builds seed inputs for the fuzz targets (fuzz/corpus/<target>/ before afl-cmin) from the
repository fixtures and slices of the shared data set. Usage: fuzz/mkseeds.py REPO OUTDIR"""
import gzip, json, os, struct, sys

repo, out = sys.argv[1], sys.argv[2]
data = os.path.join(repo, "tests", "data")
shared = "/work/shared/data"

def put(target, name, blob):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(blob)

def rec_lines(path, n):
    with gzip.open(path, "rb") as f:
        return [l.rstrip(b"\n") for _, l in zip(range(n), f)]

def trim_snapshot(msg, k):
    """A REST snapshot cut to its best k levels a side (the fuzz cap is 64)."""
    j = json.loads(msg)
    j["bids"], j["asks"] = j["bids"][:k], j["asks"][:k]
    return json.dumps(j, separators=(",", ":")).encode()

btc = rec_lines(os.path.join(data, "binance_btcusdt_slice.txt.gz"), 600)
eth = rec_lines(os.path.join(data, "binance_ethusdt_slice.txt.gz"), 600)

# binance_ws: single messages of each kind, short runs, raw payloads, NKN lines.
def payload(line):
    return line.split(b" ", 1)[1]
kinds = {}
for l in btc + eth:
    p = payload(l)
    if p.startswith(b'{"lastUpdateId"'):
        continue
    k = p[:40].split(b"@")[1][:8] if b"@" in p[:40] else b"raw"
    kinds.setdefault(k, [])
    if len(kinds[k]) < 6 and len(p) < 1500:
        kinds[k].append(p)
i = 0
for k, ps in kinds.items():
    for p in ps:
        put("binance_ws", "msg%03d" % i, p); i += 1
        # the raw payload (no combined-stream envelope)
        j = json.loads(p)
        put("binance_ws", "raw%03d" % i, json.dumps(j["data"], separators=(",", ":")).encode()); i += 1
run = [payload(l) for l in btc[:40] if not payload(l).startswith(b'{"lastUpdateId"') and len(l) < 1500][:12]
put("binance_ws", "run_btc", b"\n".join(run) + b"\n")
with gzip.open(os.path.join(data, "binance_sync_nknusdt.ws.gz"), "rb") as f:
    nkn = [l.split(b": ", 1)[1].rstrip(b"\n") for _, l in zip(range(6), f)]
for n, p in enumerate(nkn):
    if len(p) < 2000:
        put("binance_ws", "nkn%d" % n, p.replace(b"nknusdt", b"ethusdt").replace(b"NKNUSDT", b"ETHUSDT"))
docs = [
    b'{"stream":"bnbbtc@depth@100ms","data":{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}}',
    b'{"stream":"bnbbtc@trade","data":{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}}',
    b'{"stream":"bnbbtc@aggTrade","data":{"e":"aggTrade","E":1672515782136,"s":"BNBBTC","a":12345,"p":"0.001","q":"100","f":100,"l":105,"T":1672515782136,"m":true,"M":true}}',
    b'{"e":"depthUpdate","E":123456789,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10",[]]],"a":[["0.0026","100",[]]]}',
    b'{"u":400900217,"s":"BNBBTC","b":"0.0253","B":"31","a":"0.0254","A":"40"}',
]
for n, p in enumerate(docs):
    put("binance_ws", "doc%d" % n, p)

# binance_snapshot: selector byte (instrument) + a snapshot.
snaps = [payload(l) for l in btc + eth if payload(l).startswith(b'{"lastUpdateId"')]
put("binance_snapshot", "btc5", b"\x00" + trim_snapshot(snaps[0], 5))
put("binance_snapshot", "btc30", b"\x00" + trim_snapshot(snaps[0], 30))
put("binance_snapshot", "btc40_cap", b"\x00" + trim_snapshot(snaps[0], 40))
eth_snap = [payload(l) for l in eth if payload(l).startswith(b'{"lastUpdateId"')][0]
put("binance_snapshot", "eth8", b"\x01" + trim_snapshot(eth_snap, 8))
put("binance_snapshot", "doc", b"\x02" + b'{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"]]}')
put("binance_snapshot", "bnb", b"\x02" + b'{"lastUpdateId":1027024,"bids":[["0.0024","431"]],"asks":[["0.0026","12",[]]]}')

# alpaca
al = [
    b'[{"T":"q","S":"BAT/USD","bp":0.35718,"bs":13445.46,"ap":0.3581,"as":13561.902,"t":"2024-03-12T10:29:43.111588173Z"}]',
    b'[{"T":"t","S":"AVAX/USD","p":47.299,"s":29.205707815,"t":"2024-03-12T10:27:48.858228144Z","i":3447222699101865076,"tks":"S"}]',
    b'[{"T":"success","msg":"connected"}]',
    b'[{"T":"success","msg":"authenticated"}]',
    b'[{"T":"error","code":402,"msg":"auth failed"}]',
    b'[{"T":"subscription","trades":["BTC/USD"],"quotes":["BTC/USD"],"bars":[],"updatedBars":[],"dailyBars":[],"orderbooks":[]}]',
    b'[{"T":"t","S":"btc/usd","p":61234.5,"s":0.5,"t":"2024-08-08T00:00:00Z","tks":"B"},{"T":"b","S":"BTC/USD"},{"T":"q","S":"ETH/USD"}]',
    b'{"T":"q","S":"BTC/USD","bp":61234.5,"bs":1,"ap":61235,"as":2,"t":"2024-08-08T23:59:60.5z"}',
    b'2024-03-12T10:29:43.111588173Z',
]
for n, p in enumerate(al):
    put("alpaca", "doc%d" % n, p)
put("alpaca", "session", b"\n".join(al[2:4] + al[:2]) + b"\n")

# recording: selector byte (book mode, two files) + lines.
def rec(lines):
    return b"\n".join(lines) + b"\n"
small = [l for l in btc[:30] if not payload(l).startswith(b'{"lastUpdateId"') and len(l) < 1500]
snap_line = [l for l in btc if payload(l).startswith(b'{"lastUpdateId"')][0]
ts, _ = snap_line.split(b" ", 1)
snap_small = ts + b" " + trim_snapshot(payload(snap_line), 10)
idx = btc.index(snap_line)
around = [l for l in btc[max(0, idx - 6):idx + 12] if len(l) < 1500 and l != snap_line]
put("recording", "btc_diffs", b"\x02" + rec(small[:20]))
put("recording", "btc_sync", b"\x01" + rec(around[:6] + [snap_small] + around[6:]))
put("recording", "btc_auto", b"\x00" + rec(around[:6] + [snap_small] + around[6:]))
put("recording", "two_files", b"\x80" + rec(small[:10] + [l for l in eth[:20] if len(l) < 1500][:10]))
put("recording", "gzip", b"\x00" + gzip.compress(rec(small[:8]), mtime=0))
put("recording", "badlines", b"\x00" + rec([b"garbage", b"", small[0], b"17 {", b"12x {}"]))

# tardis: selector byte (0 book, 1 quotes, 2 trades, 3 detect) + CSV.
for sel, name in [(0, "tardis_binance_incremental_book_L2.csv"), (1, "tardis_binance_quotes.csv"), (2, "tardis_binance_trades.csv")]:
    body = open(os.path.join(data, name), "rb").read()
    put("tardis", name.split(".")[0], bytes([sel]) + body)
    put("tardis", name.split(".")[0] + "_detect", b"\x03" + b"\n".join(body.split(b"\n")[:8]) + b"\n")
put("tardis", "bom", b"\x01\xef\xbb\xbf" + open(os.path.join(data, "tardis_binance_quotes.csv"), "rb").read()[:400])

# binance_csv: selector byte (0 trades, 1 aggTrades, 2 futures bookTicker, 3 detect).
for sel, name in [(0, "BTCUSDT-trades-2024-08-08.csv"), (1, "ETHUSDT-aggTrades-2024-08-08.csv"), (2, "BTCUSDT-bookTicker-2024-08-08.csv")]:
    body = open(os.path.join(data, name), "rb").read()
    put("binance_csv", name.split("-")[1], bytes([sel]) + body)
    put("binance_csv", name.split("-")[1] + "_detect", b"\x03" + b"\n".join(body.split(b"\n")[:6]) + b"\n")

# evfile: the layout of src/feed/evfile.rs, version 2 (count at offset 16, records
# 8-byte aligned after zero padding).
def evt(insts, events, count=None):
    b = b"STATARB\0" + struct.pack("<IIQ", 2, len(insts), len(events) if count is None else count)
    for sym, tm, ts, lm, ls in insts:
        b += struct.pack("<H", len(sym)) + sym + struct.pack("<qIqI", tm, ts, lm, ls)
    b += b"\0" * ((8 - len(b) % 8) % 8)
    for e in events:
        b += struct.pack("<qqqqHBB4x", *e)
    return b
t0 = 1723161254087891268
evs = []
for k in range(12):
    kind = [3, 4, 1, 2, 5, 6, 7][k % 7]
    evs.append((t0 + k * 1000, t0 + k * 1000 + 500, 6183763 + k, 378826 * (k % 3), k % 2, kind, 1 if k % 2 else 0))
insts = [(b"BTCUSDT", 1, 2, 1, 5), (b"ETHUSDT", 1, 2, 1, 4)]
put("evfile", "two_insts", evt(insts, evs))
put("evfile", "empty", evt([(b"BTCUSDT", 1, 2, 1, 5)], []))
put("evfile", "truncated", evt(insts, evs)[:-17])
put("evfile", "lying_count", evt(insts, evs[:2], count=1 << 40))
put("evfile", "unfinished", evt(insts, evs[:2], count=(1 << 64) - 1))

# config: the shipped files.
cdir = os.path.join(repo, "config")
for name in sorted(os.listdir(cdir)):
    if name.endswith(".toml"):
        put("config", name.split(".")[0], open(os.path.join(cdir, name), "rb").read())
