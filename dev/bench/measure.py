#!/usr/bin/env python3
"""Runs one contender and measures it from outside.

  measure.py OUT.json NAME PIDFILE[,PIDFILE...] -- COMMAND ARGS...

Records wall time, the CPU seconds of COMMAND and all its children (RUSAGE_CHILDREN), and the
peak resident set of COMMAND (RUSAGE_CHILDREN's ru_maxrss: the largest peak among the
children this process waited for, and COMMAND is its only direct child, run without a shell, so
it is COMMAND's own peak unless COMMAND's own children grew larger), the
CPU seconds consumed meanwhile by every server whose PID file is given (the whole process tree
under that PID, read from /proc, so the JVM under its launcher counts). Writes
{"name", "elapsed_s", "client_cpu_s", "max_rss_kb", "servers_cpu_s": {pidfile: s}, "rc",
"stdout_tail"} to OUT.json, passes COMMAND's stdout/stderr through, and exits with COMMAND's exit code.
"""
import json
import os
import resource
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root):
    """CPU seconds (user+system, including reaped children) of root and all its descendants."""
    stats = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        # fields after comm: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17)
        stats[int(d)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    children = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        if p in stats:
            total += stats[p][1]
        todo.extend(children.get(p, []))
    return total / TICK


def main():
    out, name, pidfiles = sys.argv[1], sys.argv[2], sys.argv[3]
    cmd = sys.argv[sys.argv.index("--") + 1:]
    pids = {}
    for pf in filter(None, pidfiles.split(",")):
        with open(pf) as f:
            pids[pf] = int(f.read().strip())
    before = {pf: tree_cpu(p) for pf, p in pids.items()}
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE)
    elapsed = time.monotonic() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = {pf: tree_cpu(p) for pf, p in pids.items()}
    sys.stdout.buffer.write(proc.stdout)
    sys.stdout.flush()
    tail = proc.stdout.decode(errors="replace").strip().splitlines()[-1:] or [""]
    rec = {
        "name": name,
        "elapsed_s": round(elapsed, 3),
        "client_cpu_s": round((c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime), 2),
        "servers_cpu_s": {os.path.basename(os.path.dirname(pf)): round(after[pf] - before[pf], 2) for pf in pids},
        "max_rss_kb": c1.ru_maxrss,
        "rc": proc.returncode,
        "stdout_tail": tail[0],
    }
    with open(out, "w") as f:
        json.dump(rec, f)
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
