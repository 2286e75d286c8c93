#!/usr/bin/env python3
"""Checks the mock Binance venue (`statarb mock-binance`) with an independent client,
ccxt: its public endpoints (ping, time, exchangeInfo) must be read by ccxt's Binance
code as Binance's are.

    BINANCE_API_KEY=k BINANCE_API_SECRET=s statarb mock-binance --port 0 &
    python3 tools/ccxt_mock_check.py http://127.0.0.1:PORT   # needs `pip install ccxt`

Exit 0 if every check passes; prints what ccxt made of the markets.
"""
import sys

import ccxt

base = sys.argv[1].rstrip("/") + "/api/v3"
ex = ccxt.binance({"options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False}})
for k in ("public", "private"):
    ex.urls["api"][k] = base
ex.load_time_difference()
print("time difference ms:", ex.options.get("timeDifference"))
assert abs(ex.options.get("timeDifference", 0)) < 5000
markets = ex.load_markets()
for sym in ("ETH/USDT", "BTC/USDT"):
    m = markets[sym]
    print(sym, m["id"], "precision", m["precision"], "amount limits", m["limits"]["amount"], "price limits", m["limits"]["price"])
    assert m["spot"] and m["active"], m
eth, btc = markets["ETH/USDT"], markets["BTC/USDT"]
assert float(eth["precision"]["price"]) == 0.01 and float(eth["precision"]["amount"]) == 0.0001, eth["precision"]
assert float(btc["precision"]["price"]) == 0.01 and float(btc["precision"]["amount"]) == 0.00001, btc["precision"]
assert float(btc["limits"]["amount"]["min"]) == 0.00001 and float(btc["limits"]["amount"]["max"]) == 9000
print("ok: ccxt reads the mock's exchangeInfo as Binance's")
