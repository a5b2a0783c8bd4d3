#!/usr/bin/env python3
"""Reads a callgrind dump of a Go program by self (exclusive) counts.

callgrind_annotate's inclusive counts mean little for Go: goroutine
switches and stack moves make callgrind pair calls and returns wrongly,
so a function that parks is charged with what other goroutines ran
meanwhile (counts of several times the total). Self counts, and the
costs on call lines of functions that never park, hold. This script
folds callgrind's recursion suffixes ('2) and prints:

  buckets FILE [N]   self counts by kind of work (the runtime's
                     scheduler, allocator, collector, stack growth;
                     bbolt; encoding/json; ...), per exchange if N is
                     given (dhcp.cost's runs are of 20 and 140)
  self FILE [K]      the K functions with the most self instructions
  callers FILE RE    the call lines into functions matching RE: caller,
                     callee, calls, and the cost callgrind gives them

dhcp.cost keeps its dumps with -dhcp-cost-out DIR: DIR/<server>/
callgrind.out.3 is the part of the run of 140 exchanges.
"""
import collections
import re
import sys

BUCKETS = [
    ("runtime: stack growth", r"runtime\.(newstack|copystack|pcvalue|step|adjust|findfunc|funcspdelta|getStackMap|\(\*stkframe\)|\(\*unwinder\)|morestack|\(\*moduledata\)\.textAddr|funcInfo|readvarint|pcdatavalue|stackalloc|stackfree|stackpool|gentraceback|funcMaxSPDelta)"),
    ("runtime: GC", r"runtime\.(gc|scan|mark|greyobject|sweep|bgsweep|\(\*mspan\)\.(sweep|init|ensureSwept)|\(\*gcWork\)|tryDefer|findObject|wbBuf|bulkBarrier|typePointers|\(\*sweepLocked\)|\(\*pallocBits\)|\(\*pageAlloc\)|spanOf|heapBitsForAddr|\(\*gcControllerState\)|\(\*spanSet\)|\(\*spanInlineMarkBits\)|\(\*gcBits|gcmarknewobject|shade|\(\*mcentral\)|\(\*mheap\)|\(\*pageCache\)|\(\*scavenger|\(\*scavChunk|\(\*fixalloc\)|\(\*mSpanList\)|\(\*scanState)|internal/runtime/gc"),
    ("runtime: malloc", r"runtime\.(malloc|newobject|makeslice|growslice|\(\*mspan\)\.(writeHeapBits|nextFreeIndex|refillAllocCache|heapBits|typePointers)|\(\*mcache\)|nextFree|memclr|newarray|makemap|rawstring|rawbyteslice|slicebytetostring|concatstring|makechan|heapSetType|publicationBarrier|roundupsize|new)|internal/runtime/maps\.newarray"),
    ("runtime: scheduler, channels, locks, timers", r"runtime\.(select|sel|chan|send|recv|findRunnable|stealWork|netpoll|lock|unlock|futex|park|gopark|goready|ready|casgstatus|schedule|execute|runq|wakep|startm|stopm|note|mPark|gosched|\(\*timers\)|\(\*timer\)|nanotime|sysmon|retake|checkTimers|resetspinning|acquire|release|goexit|newproc|gfget|gfput|mcall|systemstack|gogo|mstart|clone|usleep|osyield|handoff|entersyscall|exitsyscall|reentersyscall|save|rand|cheaprand|procyield|pidle|injectglist|\(\*sudog|\(\*waitq\)|semacquire|semrelease|\(\*semaRoot\)|readyWithTime|\(\*randomEnum\)|\(\*randomOrder\)|blockevent|resetForSleep|wakeNetPoller|tgkill|signalM|preemptM|\(\*gQueue|\(\*gList|goschedIfBusy|runtimer|\(\*mLockProfile|walltime|time_now|\(\*lfstack|atomic|syscall)|internal/chacha8rand|internal/runtime/syscall|internal/runtime/atomic|syscall\.(Syscall|RawSyscall|rawSyscall|Syscall6)|internal/poll|time\.(now|Now|Since|runtimeNano)|^sync\.|internal/sync"),
    ("encoding/json", r"^encoding/json"),
    ("bbolt (the store and the Raft log)", r"bbolt"),
    ("hashicorp/raft, raft-boltdb, go-metrics, msgpack", r"hashicorp/|armon/go-metrics"),
    ("slog, log and time formatting", r"log/slog|internal/tracing\.|time\.(appendInt|Time\.(Append|Format)|appendFormat|absDate|Time\.absSec|Time\.locabs|\(\*Location\))|strconv|^fmt\."),
    ("insomniacslk/dhcp, u-root/uio", r"insomniacslk|u-root"),
    ("OpenTelemetry", r"opentelemetry"),
    ("maps, hashing, memmove, reflect, strings", r"internal/runtime/maps|aeshash|memhash|strhash|memmove|cmpbody|reflect\.|^strings\.|^bytes\.|indexbyte|memeqbody|unicode|^sort\.|^slices\.|runtime\.(map|cmpstring|efaceeq|ifaceeq|typehash|interhash|nilinterhash|convT|assertE2I|getitab|typeAssert|duffcopy|duffzero|strequal|interequal|stringtoslicebyte|intstring|encoderune|decoderune|countrunes|typedmemmove|typedslicecopy|wbZero|wbMove)|^unique\."),
    ("net, syscalls (user side)", r"^net[/.]|golang\.org/x/(net|sys)|^syscall\.|^os\.|mdlayher"),
    ("Outpost's code", r"outposthq"),
]


def records(path):
    """Yields (function, callee or None, calls, cost) for every cost line:
    callee None for a self cost."""
    names = {}
    fn = callee = None
    calls = 0
    after = False
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"^(c?fn)=\((\d+)\)\s*(.*)$", line)
            if m:
                if m.group(3):
                    names[m.group(2)] = m.group(3)
                if m.group(1) == "fn":
                    fn = re.sub(r"'\d+$", "", names[m.group(2)])
                else:
                    callee = re.sub(r"'\d+$", "", names[m.group(2)])
                continue
            if line.startswith("calls="):
                after = True
                calls = int(line.split("=")[1].split()[0])
                continue
            if line and (line[0].isdigit() or line[0] in "+-*"):
                parts = line.split()
                if len(parts) < 2:
                    continue
                if after:
                    after = False
                    yield fn, callee, calls, int(parts[1])
                else:
                    yield fn, None, 0, int(parts[1])


def self_counts(path):
    out = collections.Counter()
    for fn, callee, _, cost in records(path):
        if callee is None:
            out[fn] += cost
    return out


def buckets(path, per):
    rx = [(name, re.compile(r)) for name, r in BUCKETS]
    counts = collections.Counter()
    total = 0
    for fn, cost in self_counts(path).items():
        total += cost
        for name, r in rx:
            if r.search(fn):
                counts[name] += cost
                break
        else:
            counts["other"] += cost
    print(f"total {total:,} ({total / per:,.0f} per exchange)")
    for name, c in counts.most_common():
        print(f"{c / per:12,.0f} {100 * c / total:5.1f}%  {name}")


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    cmd, path = argv[1], argv[2]
    if cmd == "buckets":
        buckets(path, float(argv[3]) if len(argv) > 3 else 1.0)
    elif cmd == "self":
        counts = self_counts(path)
        total = sum(counts.values())
        for fn, c in counts.most_common(int(argv[3]) if len(argv) > 3 else 40):
            print(f"{c:14,d} {100 * c / total:5.1f}%  {fn[:150]}")
    elif cmd == "callers" and len(argv) > 3:
        rx = re.compile(argv[3])
        cost, calls = collections.Counter(), collections.Counter()
        for fn, callee, n, c in records(path):
            if callee is not None and rx.search(callee):
                cost[(fn, callee)] += c
                calls[(fn, callee)] += n
        for (fn, callee), c in cost.most_common(40):
            print(f"{c:14,d} {calls[(fn, callee)]:7d}x  {fn[:90]}  ->  {callee[:60]}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
