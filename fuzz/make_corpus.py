#!/usr/bin/env python3
"""Writes fuzz/corpus/: hand-made seeds for channel_fuzz, one per feature, plus
a few random programs. Rerun after changing the input format in
channel_fuzz.cpp (the files are committed, so CI needs no Python).

Input format: byte 0 picks the number of channels (1 + b % 4); then one byte
per channel picks its capacity from [0, 1, 2, 3, 5, 8, 64, nil]; then
operations, each an opcode byte (b % 12) and its operands:
  0 try_send ch | 1 try_recv ch | 2 close ch | 3 select+default shape |
  4 send ch (if ready) | 5 recv ch (if ready) | 6 helper shape ch [ch] |
  7 query ch | 8 select (if ready) shape | 9 select+timeout(0) shape |
  10 timer sub | 11 yield
A select shape is a count byte (1 + b % 3 slots) and three slot bytes
(channel = b % n, send if bit 4). A helper shape byte: bit 0 two cases, bit 1
first case sends, bit 2 second case sends; then one channel byte per case.
"""
import os
import random

CAP = {0: 0, 1: 1, 2: 2, 3: 3, 5: 4, 8: 5, 64: 6, None: 7}
TRY_SEND, TRY_RECV, CLOSE, SEL_DEFAULT, SEND, RECV, HELPER, QUERY, SEL, SEL_TIMEOUT, TIMER, YIELD = range(12)


def header(*caps):
    return [len(caps) - 1] + [CAP[c] for c in caps]


def slot(ch, send):
    return ch | (0x10 if send else 0)


def select(op, *slots):
    s = [op, len(slots) - 1] + [slot(c, snd) for c, snd in slots]
    return s + [0] * (3 - len(slots))


def helper(first, first_send, second=None, second_send=False):
    shape = (1 if second is not None else 0) | (2 if first_send else 0) | (4 if second_send else 0)
    out = [HELPER, shape, first]
    if second is not None:
        out.append(second)
    return out


SEEDS = {
    "buffered_fifo": header(3) + [TRY_SEND, 0] * 4 + [QUERY, 0] + [TRY_RECV, 0] * 4 + [QUERY, 0],
    "unbuffered_handoff": header(0, 1) + helper(0, False) + [TRY_SEND, 0, QUERY, 0] + helper(0, True) + [TRY_RECV, 0],
    "parked_senders_refill_buffer": header(2) + [SEND, 0, SEND, 0] + helper(0, True) + helper(0, True)
    + [RECV, 0, RECV, 0, RECV, 0, QUERY, 0, RECV, 0],
    "close_wakes_everyone": header(0, 0, 3) + helper(0, False) + helper(0, False) + helper(1, True) + helper(1, True)
    + [SEND, 2, CLOSE, 0, CLOSE, 1, CLOSE, 2, CLOSE, 2, TRY_SEND, 2, RECV, 2, RECV, 2, YIELD],
    "select_default": header(1, 0, 1) + [TRY_SEND, 0] + select(SEL_DEFAULT, (0, False), (1, False), (2, True))
    + select(SEL_DEFAULT, (0, False), (1, True)) + select(SEL_DEFAULT, (2, True), (2, False)),
    "select_blocking_and_timeout": header(2, 0) + [TRY_SEND, 0] + select(SEL, (0, False), (1, False))
    + select(SEL_TIMEOUT, (1, False), (1, True)) + select(SEL_TIMEOUT, (0, True), (1, False)) + [CLOSE, 1]
    + select(SEL_TIMEOUT, (1, True)),
    "helper_selects": header(0, 0, 1) + helper(0, False, 1, False) + [TRY_SEND, 1, TRY_SEND, 0]
    + helper(0, True, 2, True) + [TRY_RECV, 2, TRY_RECV, 0] + helper(1, False, 2, True) + [CLOSE, 1, YIELD],
    "stale_select_waiters": header(0, 0) + helper(0, False, 1, False) + helper(1, False) + [TRY_SEND, 0, TRY_SEND, 1]
    + [QUERY, 1, TRY_SEND, 1],
    "timers": header(1) + [TIMER, 0, TIMER, 1, TIMER, 1, TIMER, 2, TIMER, 2, TIMER, 3, TIMER, 1],
    "nil_channel": header(None, 1) + [TRY_SEND, 0, TRY_RECV, 0, CLOSE, 0, QUERY, 0]
    + select(SEL_DEFAULT, (0, False), (0, True)) + select(SEL_TIMEOUT, (0, False)) + helper(0, False) + [TRY_SEND, 0],
    "closed_send_in_select": header(1, 1) + [CLOSE, 0] + select(SEL_DEFAULT, (0, True), (1, True))
    + select(SEL, (0, True)) + [TRY_SEND, 0, SEND, 0],
    "big_buffer": header(64) + [TRY_SEND, 0] * 70 + [QUERY, 0] + [RECV, 0] * 10 + [CLOSE, 0],
}


def main():
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(here, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(here, name), "wb") as f:
            f.write(bytes(b & 0xFF for b in data))
    rng = random.Random(6)
    for i in range(12):
        data = [rng.randrange(256) for _ in range(rng.randrange(16, 160))]
        with open(os.path.join(here, "random_%02d" % i), "wb") as f:
            f.write(bytes(data))
    print("wrote %d seeds to %s" % (len(SEEDS) + 12, here))


if __name__ == "__main__":
    main()
