#!/usr/bin/env python3
"""Locked instructions and instructions per operation, from two callgrind runs.

Usage: locked_ops.py BINARY PROFILE_SMALL PROFILE_LARGE OPS [SITES]

The profiles come from `valgrind --tool=callgrind --dump-instr=yes
--compress-pos=no --compress-strings=no` runs of BINARY at two sizes; OPS is how many more
operations the large run did. The difference between the runs cancels
start-up and shutdown, so what is left is per operation. A locked
instruction is one with a lock prefix, or an xchg with a memory operand
(implicitly locked): the instructions whose cost a core cannot hide, and
on some hosts the largest part of an uncontended channel operation.

Only BINARY's own code is counted, so it must be linked at fixed addresses
(-no-pie) with the libraries whose atomics matter (Boost.Fiber) linked
statically; instructions in other shared objects are reported as a total.
With SITES > 0, the busiest locked instructions are listed with their
inlined call chains (addr2line).
"""
import collections
import re
import subprocess
import sys


def self_costs(profile):
    """(object, address) -> instructions executed there, from one profile."""
    costs = collections.Counter()
    obj = None
    after_call = False
    with open(profile) as f:
        for line in f:
            if line.startswith('ob='):
                obj = line[3:].strip()
            elif line.startswith('calls='):
                after_call = True  # the next line is the call's inclusive cost
            elif after_call:
                after_call = False
            elif line.startswith('0x'):
                fields = line.split()  # address, line number, Ir
                costs[(obj, int(fields[0], 16))] += int(fields[-1])
    return costs


def locked_sites(binary):
    """address -> instruction text, for every locked instruction of binary."""
    out = subprocess.run(['objdump', '-d', '--no-show-raw-insn', binary],
                         capture_output=True, text=True, check=True).stdout
    sites = {}
    for line in out.splitlines():
        m = re.match(r'\s*([0-9a-f]+):\s+(\S.*)', line)
        if not m:
            continue
        text = m.group(2)
        if text.startswith('lock ') or (text.startswith('xchg') and '(' in text):
            sites[int(m.group(1), 16)] = ' '.join(text.split()[:2])
    return sites


def call_chain(binary, address):
    out = subprocess.run(['addr2line', '-i', '-f', '-C', '-e', binary, hex(address)],
                         capture_output=True, text=True).stdout.splitlines()
    names = [out[i].split('(')[0] for i in range(0, len(out), 2)]
    own = [n for n in names if not n.startswith(('std::', '__gnu_cxx::'))]
    return ' <- '.join(n[:60] for n in own[:4]) or names[0][:60]


def main():
    binary, small, large, ops = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    show = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    a, b = self_costs(small), self_costs(large)
    diff = collections.Counter(b)
    diff.subtract(a)
    name = binary.rsplit('/', 1)[-1]
    own = {addr: c for (obj, addr), c in diff.items() if obj and obj.endswith('/' + name)}
    elsewhere = sum(c for (obj, addr), c in diff.items() if not (obj and obj.endswith('/' + name)))
    sites = locked_sites(binary)
    locked = {addr: own[addr] for addr in sites if own.get(addr, 0) > 0}
    print(f'{name}: {sum(own.values()) / ops:.1f} instructions/op in the binary, '
          f'{elsewhere / ops:.1f} in shared libraries; '
          f'{sum(locked.values()) / ops:.2f} locked instructions/op')
    for addr, count in sorted(locked.items(), key=lambda kv: -kv[1])[:show]:
        print(f'  {count / ops:6.2f}  {sites[addr]:<22} {call_chain(binary, addr)}')


if __name__ == '__main__':
    main()
