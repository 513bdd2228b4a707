#!/usr/bin/env python3
"""Side-by-side comparison for Tests/Bench/run.sh: reads the run's data (TSV, one line per measured run),
prints a Markdown section with ratios and the targets of issue 6 on stdout, and writes a PNG chart
(throughput and p50 latency per scenario, Switchyard vs its peers) if matplotlib is importable.

    compare.py DATA.tsv CHART.png

TSV columns: kind scenario target conns rps p50_us p99_us gw_us_per_req child_us_per_req gw_cpu_pct
loadgen_cpu_pct gw_rss_kb errors duration [note] (kind "setup": p50/p99 of session setup; kind "idle": conns = idle
sessions, gw_rss_kb, and KB per session in the duration column; scenario "idle" = plain, "idle-tls" = over TLS with
"plain_kb=X" in the note; scenario "sse-shared-1k": N sessions on a capped shared pool, the GET /pools check in the
note as key=value pairs).
"""
import sys

SY, MP, RAW, RAWMIN, CGW = "switchyard", "mcp-proxy", "raw-echo", "raw-echo-minimal", "raw-echo-child"


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            c = line.rstrip("\n").split("\t")
            c += [""] * (15 - len(c))
            rows.append(dict(kind=c[0], scen=c[1], target=c[2].replace(" ", "-"), conns=int(c[3] or 0), rps=num(c[4]), p50=num(c[5]),
                             p99=num(c[6]), gw_us=num(c[7]), ch_us=num(c[8]), gw_pct=num(c[9]), lg_pct=num(c[10]),
                             rss=num(c[11]), errors=num(c[12]), extra=c[13], note=c[14]))
    return rows


def kvs(note):
    return dict(p.split("=", 1) for p in (note or "").split() if "=" in p)


def fmt(x, spec="{:.0f}"):
    return "–" if x is None else spec.format(x)


def ratio(a, b, spec="{:.2f}×"):
    if a is None or b is None or b == 0:
        return "–"
    return spec.format(a / b)


def main():
    data, png = sys.argv[1], sys.argv[2]
    rows = load(data)
    get = {}
    for r in rows:
        get[(r["kind"], r["scen"], r["target"], r["conns"])] = r

    def find(kind, scen, target, conns):
        return get.get((kind, scen, target, conns))

    # scenarios: (label, kind, switchyard scenario, mcp-proxy scenario, raw scenario)
    scenarios = [
        ("Streamable HTTP, 1 shared session", "http", "shttp-shared", "shttp-shared", "shttp"),
        ("Streamable HTTP, session per connection", "http", "shttp-per-conn", "shttp-per-conn", "shttp"),
        ("legacy SSE, stream + POST per session", "sse", "sse", "sse", None),
        ("Streamable HTTP over TLS, session per connection", "http", "shttp-tls-per-conn", None, "shttp-tls"),
    ]
    out = []
    w = out.append
    w("## Side by side: Switchyard vs mcp-proxy vs raw echo")
    w("")
    w("Same host, same run, same load generators and request; the child is `switchyard demo-server` behind both gateways;")
    w("raw echo does no MCP work. Ratios: **SY/MP** = Switchyard ÷ mcp-proxy throughput, **SY/raw** = Switchyard ÷ raw echo")
    w("throughput, **CPU vs raw** = Switchyard gateway CPU µs/req ÷ raw echo's, **p50 SY/MP** = Switchyard p50 ÷ mcp-proxy p50.")
    w("**raw** is the evhttp echo; **min** is the minimal echo (raw libevent events + read/write, no evhttp), the same I/O")
    w("strategy as Switchyard's own HTTP layer and so the stricter floor; **SY/min** and **CPU vs min** compare against it.")
    w("**C gw** is the minimal C gateway: the minimal echo plus a demo-server child per connection (body piped to it, its")
    w("line sent back; no MCP work): the floor for a gateway with a child behind every session (session-per-connection rows only).")
    w("")
    w("| scenario | conns | SY req/s | MP req/s | raw req/s | SY/MP | SY/raw | SY p50 µs | MP p50 µs | raw p50 µs | p50 SY/MP "
      "| SY p99 µs | MP p99 µs | SY CPU µs/req | MP CPU µs/req | raw CPU µs/req | CPU vs raw | SY RSS KB | MP RSS KB "
      "| min req/s | SY/min | min CPU µs/req | CPU vs min | C gw req/s | SY/C gw | C gw CPU µs/req | CPU vs C gw |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    chart = []  # (label, sy, mp, raw) rows
    conns_all = sorted({r["conns"] for r in rows if r["kind"] in ("http", "sse")})
    for label, kind, s_sy, s_mp, s_raw in scenarios:
        for c in conns_all:
            sy = find(kind, s_sy, SY, c)
            if not sy:
                continue
            mp = find(kind, s_mp, MP, c) if s_mp else None
            raw = find("http", s_raw, RAW, c) if s_raw else None
            rmin = find("http", s_raw, RAWMIN, c) if s_raw else None
            cgw = find("http", s_raw, CGW, c) if s_raw and s_sy == "shttp-per-conn" else None
            g = lambda r, k: r[k] if r else None
            w(f"| {label} | {c} | {fmt(g(sy,'rps'))} | {fmt(g(mp,'rps'))} | {fmt(g(raw,'rps'))} | "
              f"{ratio(g(sy,'rps'), g(mp,'rps'), '{:.1f}×')} | {ratio(g(sy,'rps'), g(raw,'rps'))} | {fmt(g(sy,'p50'))} | "
              f"{fmt(g(mp,'p50'))} | {fmt(g(raw,'p50'))} | {ratio(g(sy,'p50'), g(mp,'p50'), '{:.3f}')} | {fmt(g(sy,'p99'))} | "
              f"{fmt(g(mp,'p99'))} | {fmt(g(sy,'gw_us'), '{:.1f}')} | {fmt(g(mp,'gw_us'), '{:.1f}')} | "
              f"{fmt(g(raw,'gw_us'), '{:.1f}')} | {ratio(g(sy,'gw_us'), g(raw,'gw_us'))} | {fmt(g(sy,'rss'))} | {fmt(g(mp,'rss'))} | "
              f"{fmt(g(rmin,'rps'))} | {ratio(g(sy,'rps'), g(rmin,'rps'))} | {fmt(g(rmin,'gw_us'), '{:.1f}')} | "
              f"{ratio(g(sy,'gw_us'), g(rmin,'gw_us'))} | {fmt(g(cgw,'rps'))} | {ratio(g(sy,'rps'), g(cgw,'rps'))} | "
              f"{fmt(g(cgw,'gw_us'), '{:.1f}')} | {ratio(g(sy,'gw_us'), g(cgw,'gw_us'))} |")
            short = {"shttp-shared": "HTTP 1 sess", "shttp-per-conn": "HTTP N sess", "sse": "SSE",
                     "shttp-tls-per-conn": "HTTPS N sess"}[s_sy]
            chart.append((f"{short}\nc={c}", sy, mp, raw, rmin, cgw))
    sp = find("http", "shttp-per-conn", "switchyard-shared-pool", 64)
    dd = find("http", "shttp-per-conn", SY, 64)
    if sp:
        w("")
        w("Pool modes, Streamable HTTP, 64 sessions on 64 connections:")
        w("")
        w("| pool | req/s | p50 µs | p99 µs | gateway CPU µs/req | child CPU µs/req | gateway RSS KB |")
        w("|---|---|---|---|---|---|---|")
        for name, r in (("dedicated (64 children)", dd), ("shared (`min_idle: 2`)", sp)):
            if r:
                w(f"| {name} | {fmt(r['rps'])} | {fmt(r['p50'])} | {fmt(r['p99'])} | {fmt(r['gw_us'], '{:.1f}')} | "
                  f"{fmt(r['ch_us'], '{:.1f}')} | {fmt(r['rss'])} |")
        if dd:
            w(f"\nshared ÷ dedicated throughput: {ratio(sp['rps'], dd['rps'])}")
            chart.append(("HTTP N sess\nshared pool\nc=64", sp, None, None, None, None))

    big = [r for r in rows if r["kind"] == "sse" and r["scen"] == "sse-shared-1k"]
    if big:
        ref = find("sse", "sse", SY, 64)
        w("")
        w("Legacy SSE at scale: many sessions multiplexed onto a few shared children (one request in flight per session):")
        w("")
        w("| gateway | sessions | children | req/s | p50 µs | p99 µs | gateway CPU µs/req | child CPU µs/req | gateway RSS KB | `/pools` check |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        if ref:
            w(f"| dedicated pool (one child per session) | 64 | 64 | {fmt(ref['rps'])} | {fmt(ref['p50'])} | {fmt(ref['p99'])} | "
              f"{fmt(ref['gw_us'], '{:.1f}')} | {fmt(ref['ch_us'], '{:.1f}')} | {fmt(ref['rss'])} | – |")
        for r in big:
            k = kvs(r["note"])
            check = (f"{k.get('pools_full', '?')} of {k.get('pools_polls', '?')} reads: {k.get('children', '?')} children, "
                     f"{r['conns']} sessions" + ("" if k.get("pools_ok", "FAIL") != "FAIL" else " **FAIL**"))
            w(f"| shared pool, {k.get('children', '?')} children × {k.get('per_child', '?')} | {r['conns']} | {k.get('children', '?')} | "
              f"{fmt(r['rps'])} | {fmt(r['p50'])} | {fmt(r['p99'])} | {fmt(r['gw_us'], '{:.1f}')} | {fmt(r['ch_us'], '{:.1f}')} | "
              f"{fmt(r['rss'])} | {check} |")
            chart.append((f"SSE {r['conns']} sess\n{k.get('children', '?')} shared\nchildren", r, None, None, None, None))

    # targets
    w("")
    w("### Targets (issue 6; benchmark figures, not gates)")
    w("")
    verdicts = []

    def verdict(name, value, ok):
        state = "–" if ok is None else ("met" if ok else "**missed**")
        verdicts.append(f"| {name} | {value} | {state} |")

    sy64, mp64, raw64 = find("http", "shttp-per-conn", SY, 64), find("http", "shttp-per-conn", MP, 64), find("http", "shttp", RAW, 64)
    if sy64 and mp64:
        x = sy64["rps"] / mp64["rps"] if mp64["rps"] else None
        verdict("Streamable HTTP, N sessions, 64 conns: ≥ 30× mcp-proxy throughput", fmt(x, "{:.1f}×"), None if x is None else x >= 30)
    else:
        verdict("Streamable HTTP, N sessions, 64 conns: ≥ 30× mcp-proxy throughput", "no mcp-proxy data", None)
    for key, name in ((RAW, "raw echo (evhttp)"), (RAWMIN, "minimal raw echo"), (CGW, "minimal C gateway with children")):
        r64 = find("http", "shttp", key, 64)
        if sy64 and r64:
            x = sy64["rps"] / r64["rps"]
            verdict(f"Streamable HTTP, N sessions, 64 conns: ≥ 0.75× {name} throughput", f"{x:.2f}×", x >= 0.75)
    for key, name in ((RAW, "raw echo (evhttp)"), (RAWMIN, "minimal raw echo"), (CGW, "minimal C gateway with children")):
        for c in (1, 16, 64):
            s, r = find("http", "shttp-per-conn", SY, c), find("http", "shttp", key, c)
            if s and r and s["gw_us"] and r["gw_us"]:
                x = s["gw_us"] / r["gw_us"]
                verdict(f"gateway CPU µs/req ≤ 1.5× {name}'s (N sessions, {c} conn{'s' if c > 1 else ''})",
                        f"{s['gw_us']:.1f} vs {r['gw_us']:.1f} µs = {x:.2f}×", x <= 1.5)
    for scen, name in (("shttp-per-conn", "session per connection"), ("shttp-shared", "one shared session")):
        s, m = find("http", scen, SY, 1), find("http", scen, MP, 1)
        if s and m and m["p50"]:
            x = s["p50"] / m["p50"]
            verdict(f"p50 at 1 connection ≤ 1/5 of mcp-proxy's ({name})", f"{s['p50']:.0f} vs {m['p50']:.0f} µs = 1/{m['p50']/s['p50']:.1f}", x <= 0.2)
    idle = sorted((r for r in rows if r["kind"] == "idle" and r["scen"] == "idle" and r["target"] == SY), key=lambda r: r["conns"])
    for r in idle:
        kb = num(r["extra"])
        verdict(f"≤ 8 KB RSS per idle SSE session ({r['conns']} sessions)", fmt(kb, "{:.2f} KB"), None if kb is None else kb <= 8)
    for r in rows:
        if r["kind"] == "idle" and r["scen"] == "idle" and r["target"] == MP:
            verdict(f"(peer) mcp-proxy RSS per idle SSE session ({r['conns']} sessions)", fmt(num(r["extra"]), "{:.1f} KB"), None)
    for r in rows:
        if r["kind"] == "idle" and r["scen"] == "idle-tls" and r["target"] == SY:
            plain = kvs(r["note"]).get("plain_kb", "–")
            verdict(f"(for reference) RSS per idle TLS SSE session ({r['conns']} sessions; plain at the same count: {plain} KB)",
                    fmt(num(r["extra"]), "{:.2f} KB"), None)
    st = find("setup", "setup", "switchyard-shared-pool", 1)
    if st:
        verdict("shared-pool session setup p50 ≤ 0.5 ms", f"{st['p50']/1000:.3f} ms (p99 {st['p99']/1000:.3f} ms)", st["p50"] <= 500)
    for key, name in ((SY, "dedicated pool"), (MP, "mcp-proxy")):
        r = find("setup", "setup", key, 1)
        if r:
            verdict(f"(for reference) session setup p50, {name}", f"{r['p50']/1000:.3f} ms (p99 {r['p99']/1000:.3f} ms)", None)
    w("| target | measured | |")
    w("|---|---|---|")
    out.extend(verdicts)
    print("\n".join(out))

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # noqa: BLE001
        print(f"compare.py: no chart (matplotlib not importable: {e})", file=sys.stderr)
        return
    if not chart:
        return
    labels = [c[0] for c in chart]
    series = [("Switchyard", 1, "#1f77b4"), ("mcp-proxy", 2, "#d62728"), ("raw echo, evhttp (no MCP)", 3, "#7f7f7f"),
              ("raw echo, minimal (no MCP)", 4, "#2ca02c"), ("minimal C gateway + child (no MCP)", 5, "#9467bd")]
    fig, axes = plt.subplots(2, 1, figsize=(max(10, 0.95 * len(labels) + 2), 9), sharex=True)
    width = 0.16
    for ax, key, title, unit in ((axes[0], "rps", "Throughput (higher is better, log scale)", "req/s"),
                                 (axes[1], "p50", "p50 latency (lower is better, log scale)", "µs")):
        for name, idx, color in series:
            xs, ys = [], []
            for i, c in enumerate(chart):
                r = c[idx]
                if r and r[key]:
                    xs.append(i + (idx - 3) * width)
                    ys.append(r[key])
            bars = ax.bar(xs, ys, width, label=name, color=color)
            for b, y in zip(bars, ys):
                ax.annotate(f"{y:,.0f}", (b.get_x() + b.get_width() / 2, y), ha="center", va="bottom", fontsize=7,
                            rotation=90, xytext=(0, 2), textcoords="offset points")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.grid(axis="y", alpha=0.3, which="both")
        ax.margins(y=0.25)
    axes[0].legend(loc="upper left", ncol=5, fontsize=8)
    axes[1].set_xticks(range(len(labels)))
    axes[1].set_xticklabels(labels, fontsize=8)
    fig.suptitle("Switchyard vs mcp-proxy vs raw libevent echo: tools/call echo, same host, same load generators")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"compare.py: chart written to {png}", file=sys.stderr)


if __name__ == "__main__":
    main()
