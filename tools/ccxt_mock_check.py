#!/usr/bin/env python3
"""Drives the mock Binance venue (`statarb mock-binance`) with an independent client,
ccxt 4.5.90, through what a trading client does first and most: the clock, the
markets, the account, and an order placed, queried, listed and cancelled. Every answer
must be read by ccxt's Binance code as Binance's are; each field that matters is
checked (ids, symbol, side, price, amount, status, balances).

    python3 -m venv /tmp/ccxt && /tmp/ccxt/bin/pip install ccxt==4.5.90
    BINANCE_API_KEY=k BINANCE_API_SECRET=s statarb mock-binance --port 0 &
    /tmp/ccxt/bin/python tools/ccxt_mock_check.py http://127.0.0.1:PORT [KEY SECRET]

KEY and SECRET default to the environment's BINANCE_API_KEY and BINANCE_API_SECRET.
The mock's balances must hold at least 1 ETH and 10 USDT, its market the symbols
ETHUSDT (tick 0.01, lot 0.0001) and BTCUSDT (tick 0.01, lot 0.00001): the built-in
config's. Only spot is asked for: ccxt's calls to sapi (currencies, margin) and to the
futures APIs are turned off through its options.

Exit 0 if every check passes (the last line then starts with "ok:"); on the first
failed check, an AssertionError or a ccxt exception with the venue's answer.
"""
import os
import sys

import ccxt

if ccxt.__version__ != "4.5.90":
    print(f"warning: checked with ccxt 4.5.90, this is {ccxt.__version__}", file=sys.stderr)

base = sys.argv[1].rstrip("/") + "/api/v3"
key = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("BINANCE_API_KEY", "")
secret = sys.argv[3] if len(sys.argv) > 3 else os.environ.get("BINANCE_API_SECRET", "")
ex = ccxt.binance(
    {
        "apiKey": key,
        "secret": secret,
        "enableRateLimit": False,
        "timeout": 10_000,
        "options": {
            "defaultType": "spot",
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
            "warnOnFetchOpenOrdersWithoutSymbol": False,
            # Signed requests' timestamps corrected by the offset load_time_difference
            # measures (the mock's clock may be skewed).
            "adjustForTimeDifference": True,
            "recvWindow": 5000,
        },
    }
)
# Every spot endpoint ccxt uses (public and signed) is under /api/v3.
for k in ("public", "private"):
    ex.urls["api"][k] = base


def step(name, value):
    print(f"{name}: {value}")
    return value


# Clock.
ex.load_time_difference()
step("time difference ms", ex.options.get("timeDifference"))
assert abs(ex.options.get("timeDifference", 0)) < 5000

# Markets (exchangeInfo): precision and limits from PRICE_FILTER and LOT_SIZE.
markets = ex.load_markets()
for sym in ("ETH/USDT", "BTC/USDT"):
    m = markets[sym]
    step(sym, f"{m['id']} precision {m['precision']} amount {m['limits']['amount']} price {m['limits']['price']}")
    assert m["spot"] and m["active"], m
eth, btc = markets["ETH/USDT"], markets["BTC/USDT"]
assert float(eth["precision"]["price"]) == 0.01 and float(eth["precision"]["amount"]) == 0.0001, eth["precision"]
assert float(btc["precision"]["price"]) == 0.01 and float(btc["precision"]["amount"]) == 0.00001, btc["precision"]
assert float(btc["limits"]["amount"]["min"]) == 0.00001 and float(btc["limits"]["amount"]["max"]) == 9000

# Account (GET /api/v3/account, signed).
bal = ex.fetch_balance({"type": "spot"})
step("balance ETH", bal.get("ETH"))
step("balance USDT", bal.get("USDT"))
eth_free0, usdt_free0 = float(bal["ETH"]["free"]), float(bal["USDT"]["free"])
assert float(bal["ETH"]["used"]) == 0.0 and float(bal["ETH"]["total"]) == eth_free0, bal["ETH"]
assert eth_free0 >= 1 and usdt_free0 >= 10, (eth_free0, usdt_free0)


def check_order(o, *, status, side, price, amount, kind="limit"):
    assert o["id"] == placed["id"], (o["id"], placed["id"])
    # A cancel's answer names the cancel's own client id, the order's as
    # origClientOrderId (Binance's DELETE /api/v3/order).
    cid = o["info"].get("origClientOrderId", o["clientOrderId"])
    assert cid == placed["clientOrderId"], o
    assert o["symbol"] == "ETH/USDT", o["symbol"]
    assert o["side"] == side, o["side"]
    assert o["type"] == kind, o["type"]
    assert float(o["price"]) == price, o["price"]
    assert float(o["amount"]) == amount, o["amount"]
    assert float(o["filled"]) == 0.0 and float(o["remaining"]) == amount, o
    assert o["status"] == status, o["status"]


# A sell far above the market rests: 0.5 ETH at 99999.99, good till cancelled.
price, amount = 99_999.99, 0.5
placed = ex.create_order("ETH/USDT", "limit", "sell", amount, price, {"timeInForce": "GTC"})
step("created", {k: placed[k] for k in ("id", "clientOrderId", "status", "price", "amount")})
assert placed["id"], placed
check_order(placed, status="open", side="sell", price=price, amount=amount)
assert placed["timeInForce"] == "GTC", placed["timeInForce"]

# Its funds are locked.
bal = ex.fetch_balance({"type": "spot"})
step("balance ETH with the order open", bal["ETH"])
assert abs(float(bal["ETH"]["free"]) - (eth_free0 - amount)) < 1e-9, bal["ETH"]
assert abs(float(bal["ETH"]["used"]) - amount) < 1e-9, bal["ETH"]

got = ex.fetch_order(placed["id"], "ETH/USDT")
step("fetched", got["status"])
check_order(got, status="open", side="sell", price=price, amount=amount)

opened = ex.fetch_open_orders("ETH/USDT")
step("open orders", [o["id"] for o in opened])
assert [o["id"] for o in opened] == [placed["id"]], opened
check_order(opened[0], status="open", side="sell", price=price, amount=amount)

cancelled = ex.cancel_order(placed["id"], "ETH/USDT")
step("cancelled", cancelled["status"])
check_order(cancelled, status="canceled", side="sell", price=price, amount=amount)

got = ex.fetch_order(placed["id"], "ETH/USDT")
step("fetched after the cancel", got["status"])
check_order(got, status="canceled", side="sell", price=price, amount=amount)
assert ex.fetch_open_orders("ETH/USDT") == []

# Post-only (LIMIT_MAKER): a buy far below the market rests, then is cancelled.
price, amount = 10.0, 0.25
placed = ex.create_order("ETH/USDT", "limit", "buy", amount, price, {"postOnly": True})
step("created post-only", {k: placed[k] for k in ("id", "status", "type", "postOnly")})
check_order(placed, status="open", side="buy", price=price, amount=amount)
assert placed["postOnly"] is True, placed
bal = ex.fetch_balance({"type": "spot"})
assert abs(float(bal["USDT"]["used"]) - price * amount) < 1e-9, bal["USDT"]
cancelled = ex.cancel_order(placed["id"], "ETH/USDT")
check_order(cancelled, status="canceled", side="buy", price=price, amount=amount)

# Nothing is left locked.
bal = ex.fetch_balance({"type": "spot"})
step("balance at the end", {a: bal[a] for a in ("ETH", "USDT")})
assert float(bal["ETH"]["free"]) == eth_free0 and float(bal["ETH"]["used"]) == 0.0, bal["ETH"]
assert float(bal["USDT"]["free"]) == usdt_free0 and float(bal["USDT"]["used"]) == 0.0, bal["USDT"]

# A wrong secret is refused as Binance refuses it (-1022), which ccxt maps.
bad = ccxt.binance({"apiKey": key, "secret": secret + "x", "options": ex.options})
bad.urls["api"] = ex.urls["api"]
bad.markets, bad.markets_by_id, bad.symbols = ex.markets, ex.markets_by_id, ex.symbols
try:
    bad.fetch_balance({"type": "spot"})
    raise AssertionError("a wrong signature was accepted")
except ccxt.AuthenticationError as e:
    step("wrong secret", type(e).__name__)

print("ok: ccxt reads the mock's time, markets, account and order answers as Binance's")
