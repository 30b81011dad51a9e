#!/usr/bin/python3
"""Plot an output file of `lapicque run` (or a mean-field solution in the same layout) to PNG.

    scripts/plot.py OUT.h5 [--outdir DIR] [--times T1,T2,...] [--limit OTHER.h5]

Writes into DIR (default: `<stem>-plots/` next to OUT.h5) whichever of these the file allows:

    raster.png      spikes of at most 50 neurons per population (evenly spaced ids among the
                    recorded ones), at most ~200k dots (the time window is shortened if needed)
    rates.png       population rates over time [Hz]
    density.png     the empirical density f(t, v) of V per population, time x bin [1/mV]
    histograms.png  f(t, v) at chosen times (--times, in ms, nearest sample; default: the
                    samples nearest 1/4, 1/2, 3/4 and all of the way from the first to the
                    last), overlaid with the same from --limit OTHER.h5 (dashed)
    moments.png     mean of V +- one standard deviation over time [mV]
    balance.png     mean excitatory, inhibitory, external and net input per population [mV/ms]
    trees.png       tree-indexed observables over time, one line per tree (in one panel each
                    when their sizes differ by more than a factor of 10)
    timers.png      wall time per phase and rank [s], stacked

With --limit, rates and moments of OTHER.h5 are drawn dashed too. Prints the PNGs written.
Layout of the input: docs/output.md. Needs h5py, numpy and matplotlib (Debian:
python3-h5py, python3-matplotlib).
"""
import argparse
import os
import sys

PROG = "plot.py"


def fail(message):
    """One line on stderr and exit code 2 (bad input)."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


try:
    import h5py
    import numpy as np
except ImportError as e:
    fail(f"{e.name} is missing (Debian: apt-get install python3-h5py python3-matplotlib)")

matplotlib = plt = None


def load_matplotlib():
    """Imports matplotlib with the Agg backend (only once the input has been checked)."""
    global matplotlib, plt
    try:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as pyplot
    except ImportError as e:
        fail(f"{e.name} is missing (Debian: apt-get install python3-matplotlib)")
    matplotlib, plt = mpl, pyplot


MAX_NEURONS = 50  # per population in the raster
MAX_DOTS = 200_000  # in the raster
DPI = 120


def text(obj, name, default=""):
    value = obj.attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else str(value)


def open_output(path):
    """Opens a complete output file, or exits with one line saying why it cannot."""
    if not os.path.exists(path):
        fail(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        fail(f"{path}: not an HDF5 file ({str(e).splitlines()[0]})")
    if text(f, "status") != "complete":
        fail(f'{path}: not a complete output file (no status "complete": its run did not finish)')
    if "populations" not in f:
        fail(f"{path}: no /populations: not a lapicque output file")
    return f


def populations(f):
    """(name, size) in gid order."""
    pops = [(int(g.attrs.get("gid_start", 0)), name, int(g.attrs.get("size", 0)))
            for name, g in f["populations"].items()]
    return [(name, size) for _, name, size in sorted(pops)]


def recorded(f, name, size):
    """Number of neurons, from the first, whose spikes the file holds."""
    try:
        import tomllib

        config = tomllib.loads(text(f, "config"))
        return int(config["population"][name].get("record_spikes", size))
    except Exception:
        return size


def label(f):
    """The file's name, for legends."""
    return os.path.basename(f.filename)


def panels(n, height=2.6, width=9.0, sharex=True):
    fig, axes = plt.subplots(n, 1, figsize=(width, 0.8 + height * n), sharex=sharex,
                             squeeze=False)
    return fig, axes[:, 0]


def save(fig, outdir, name, written):
    path = os.path.join(outdir, name)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    written.append(path)


def raster(f, pops, title, outdir, written):
    if "spikes" not in f:
        return
    chosen = []
    for name, size in pops:
        if name not in f["spikes"]:
            continue
        g = f["spikes"][name]
        ids, t = g["node_ids"][:], g["timestamps"][:]
        n = max(1, min(recorded(f, name, size), size))
        keep = np.unique(np.linspace(0, n - 1, min(n, MAX_NEURONS)).round().astype(np.int64))
        mask = np.isin(ids, keep)
        ids, t = ids[mask], t[mask]
        order = np.argsort(t, kind="stable")  # time-sorted raster
        ids, t = ids[order], t[order]
        row = np.searchsorted(keep, ids)
        chosen.append((name, len(keep), n, row, t))
    if not chosen:
        return
    t_stop = float(f.attrs.get("t_stop", max((c[4].max() for c in chosen if len(c[4])),
                                              default=1.0)))
    t_end = t_stop
    dots = sum(len(c[4]) for c in chosen)
    if dots > MAX_DOTS:
        # Spikes are time-sorted: show the first window holding MAX_DOTS of them.
        t_all = np.sort(np.concatenate([c[4] for c in chosen]))
        t_end = float(t_all[MAX_DOTS - 1])
    rows_total = sum(c[1] for c in chosen)
    fig, ax = plt.subplots(figsize=(10, min(12.0, 1.2 + 0.06 * rows_total + 0.4 * len(chosen))))
    offset, ticks = 0, []
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, rows, n, row, t) in enumerate(chosen):
        shown = t <= t_end
        ax.scatter(t[shown], row[shown] + offset, s=8, marker="|", linewidths=1.0,
                   color=colors[k % len(colors)], rasterized=True)
        ticks.append((offset + (rows - 1) / 2, f"{name}\n{rows} of {n}"))
        offset += rows + 2
    ax.set_yticks([p for p, _ in ticks], [s for _, s in ticks])
    ax.set_ylim(-1, offset - 1)
    ax.set_xlim(0, t_end)
    ax.set_xlabel("time [ms]")
    window = "" if t_end >= t_stop else f", first {t_end:g} ms"
    ax.set_title(f"{title}: spikes{window}")
    save(fig, outdir, "raster.png", written)


def rates(f, pops, title, limit, outdir, written):
    if "rates" not in f or "time" not in f["rates"]:
        return
    t = f["rates/time"][:]
    width = float(f["rates"].attrs.get("bin_width", t[1] - t[0] if len(t) > 1 else 1.0))
    fig, axes = panels(len(pops), height=2.2)
    for ax, (name, _) in zip(axes, pops):
        if name not in f["rates"]:
            continue
        r = f["rates"][name][:]
        ax.step(np.append(t, t[-1] + width), np.append(r, r[-1]), where="post", lw=0.8,
                label=f"{name}: mean {r.mean():.2f} Hz")
        if limit is not None and "rates" in limit and name in limit["rates"]:
            lt = limit["rates/time"][:]
            lr = limit["rates"][name][:]
            ax.plot(lt + 0.5 * width, lr, "--", color="k", lw=1.0,
                    label=f"{label(limit)}: mean {lr.mean():.2f} Hz")
        ax.set_ylabel("rate [Hz]")
        ax.legend(loc="upper right", fontsize="small")
    axes[-1].set_xlabel("time [ms]")
    axes[0].set_title(f"{title}: population rates in bins of {width:g} ms")
    save(fig, outdir, "rates.png", written)


def density(f, pops, title, outdir, written):
    if "histograms" not in f or "edges" not in f["histograms"]:
        return
    t, edges = f["histograms/time"][:], f["histograms/edges"][:]
    if len(t) == 0:
        return
    # Cells centred on the sample times.
    if len(t) > 1:
        mid = 0.5 * (t[1:] + t[:-1])
        tx = np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])
    else:
        tx = np.array([t[0] - 0.5, t[0] + 0.5])
    fig, axes = panels(len(pops), height=2.8)
    for ax, (name, _) in zip(axes, pops):
        if name not in f["histograms"]:
            continue
        h = f["histograms"][name][:]
        # A square-root colour scale, saturating above the 99.5% quantile (the initial
        # condition is often a point mass that would swamp everything else).
        top = float(np.quantile(h, 0.995)) if h.size else 1.0
        top = top if top > 0 else max(float(h.max()), 1e-12)
        norm = matplotlib.colors.PowerNorm(0.5, vmin=0.0, vmax=top)
        mesh = ax.pcolormesh(tx, edges, h.T, shading="flat", cmap="viridis", norm=norm)
        fig.colorbar(mesh, ax=ax, label="f [1/mV]", extend="max" if h.max() > top else "neither")
        ax.set_ylabel(f"{name}: V [mV]")
    axes[-1].set_xlabel("time [ms]")
    axes[0].set_title(f"{title}: density of V")
    save(fig, outdir, "density.png", written)


def nearest(times, wanted):
    return int(np.argmin(np.abs(np.asarray(times) - wanted)))


def histograms(f, pops, title, times, limit, outdir, written):
    if "histograms" not in f or "edges" not in f["histograms"]:
        return
    t, edges = f["histograms/time"][:], f["histograms/edges"][:]
    if len(t) == 0:
        return
    if times is None:
        # Evenly spaced after the start (the initial condition is known): a quarter of the
        # way, half, three quarters and the end.
        picks = [nearest(t, t[0] + k / 4 * (t[-1] - t[0])) for k in range(1, 5)]
        picks = list(dict.fromkeys(picks))
    else:
        picks = list(dict.fromkeys(nearest(t, x) for x in times))
    has_limit = (limit is not None and "histograms" in limit
                 and "edges" in limit["histograms"] and len(limit["histograms/time"]) > 0)
    if has_limit:
        lt, ledges = limit["histograms/time"][:], limit["histograms/edges"][:]
    cmap = plt.get_cmap("viridis")
    fig, axes = panels(len(pops), height=2.8, sharex=False)
    for ax, (name, _) in zip(axes, pops):
        if name not in f["histograms"]:
            continue
        h = f["histograms"][name][:]
        for j, k in enumerate(picks):
            color = cmap(j / max(1, len(picks) - 1) * 0.9)
            ax.stairs(h[k], edges, color=color, lw=1.2, label=f"t = {t[k]:g} ms")
            if has_limit and name in limit["histograms"]:
                lk = nearest(lt, t[k])
                ax.stairs(limit["histograms"][name][lk], ledges, color=color, lw=1.0,
                          linestyle="--")
        ax.set_ylabel(f"{name}: f [1/mV]")
        ax.set_xlabel("V [mV]")
        ax.legend(loc="upper left", fontsize="small")
    what = f" (dashed: {label(limit)})" if has_limit else ""
    axes[0].set_title(f"{title}: density of V at sample times{what}")
    save(fig, outdir, "histograms.png", written)


def moments(f, pops, title, limit, outdir, written):
    if "moments" not in f or "time" not in f["moments"]:
        return
    t = f["moments/time"][:]
    fig, axes = panels(len(pops), height=2.4)
    for ax, (name, _) in zip(axes, pops):
        if name not in f["moments"]:
            continue
        m = f["moments"][name]["mean"][:]
        sd = np.sqrt(np.maximum(f["moments"][name]["variance"][:], 0.0))
        ax.plot(t, m, lw=1.0, label=f"{name}: mean")
        ax.fill_between(t, m - sd, m + sd, alpha=0.3, label="mean +- sd")
        if limit is not None and "moments" in limit and name in limit["moments"]:
            lt = limit["moments/time"][:]
            lm = limit["moments"][name]["mean"][:]
            lsd = np.sqrt(np.maximum(limit["moments"][name]["variance"][:], 0.0))
            ax.plot(lt, lm, "--", color="k", lw=1.0, label=label(limit))
            ax.plot(lt, lm - lsd, ":", color="k", lw=0.8)
            ax.plot(lt, lm + lsd, ":", color="k", lw=0.8)
        ax.set_ylabel("V [mV]")
        ax.legend(loc="upper right", fontsize="small")
    axes[-1].set_xlabel("time [ms]")
    axes[0].set_title(f"{title}: moments of V")
    save(fig, outdir, "moments.png", written)


def balance(f, pops, title, outdir, written):
    if "balance" not in f or "time" not in f["balance"]:
        return
    t = f["balance/time"][:]
    shown = [name for name, _ in pops if name in f["balance"]]
    if not shown or len(t) == 0:
        return
    fig, axes = panels(len(shown), height=2.6)
    styles = {"excitatory": ("tab:red", "-"), "inhibitory": ("tab:blue", "-"),
              "external": ("tab:green", "-"), "net": ("k", "-")}
    for ax, name in zip(axes, shown):
        g = f["balance"][name]
        for part, (color, style) in styles.items():
            if part in g and g[part].shape == t.shape:
                ax.step(t, g[part][:], style, where="post", color=color,
                        lw=1.6 if part == "net" else 1.0, label=part)
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.set_ylabel(f"{name}: input [mV/ms]")
        ax.legend(loc="upper right", fontsize="small", ncol=4)
    axes[-1].set_xlabel("time [ms]")
    axes[0].set_title(f"{title}: mean input per neuron")
    save(fig, outdir, "balance.png", written)


def trees(f, title, outdir, written):
    if "trees" not in f:
        return
    lines = []
    for name, g in f["trees"].items():
        if not isinstance(g, h5py.Group) or "time" not in g or "value" not in g:
            continue
        t, v = g["time"][:], g["value"][:]
        if v.ndim == 1 and v.shape == t.shape and len(t) > 0:
            lines.append((name, t, v, text(g["value"], "units")))
    if not lines:
        return
    # One axes when the trees have comparable sizes, else one panel per tree.
    sizes = [float(np.max(np.abs(v[np.isfinite(v)]), initial=0.0)) for _, _, v, _ in lines]
    positive = [s for s in sizes if s > 0]
    together = not positive or max(positive) <= 10 * min(positive)
    if together:
        fig, ax = plt.subplots(figsize=(9, 4))
        axes = [ax] * len(lines)
    else:
        fig, axes = panels(len(lines), height=2.2)
    for ax, (name, t, v, units) in zip(axes, lines):
        ax.plot(t, v, lw=1.0, marker="." if len(t) <= 50 else None, label=name)
        unit = f" [{units}]" if units and units != "1" else ""
        ax.set_ylabel("<tau_N(T), phi>" + unit if together else f"{name}{unit}")
        if together:
            ax.legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("time [ms]")
    axes[0].set_title(f"{title}: tree-indexed observables")
    save(fig, outdir, "trees.png", written)


def timers(f, title, outdir, written):
    if "timers" not in f or "seconds" not in f["timers"]:
        return
    ds = f["timers/seconds"]
    s = ds[:]
    if s.ndim != 2 or s.shape[0] == 0:
        return
    names = [p for p in text(ds, "phases").split(",") if p]
    names += [f"phase {k}" for k in range(len(names), s.shape[1])]
    ranks = np.arange(s.shape[0])
    fig, ax = plt.subplots(figsize=(max(6, 1.5 + 0.5 * len(ranks)), 4.5))
    bottom = np.zeros(len(ranks))
    colors = plt.get_cmap("tab10")
    for k in range(s.shape[1]):
        ax.bar(ranks, s[:, k], bottom=bottom, color=colors(k % 10), label=names[k])
        bottom += s[:, k]
    ax.set_xticks(ranks)
    ax.set_xlabel("rank")
    ax.set_ylabel("wall time [s]")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    ax.set_title(f"{title}: time per phase")
    save(fig, outdir, "timers.png", written)


def parse_times(value):
    try:
        return [float(x) for x in value.split(",") if x.strip()]
    except ValueError:
        fail(f"--times {value}: not a comma-separated list of times in ms")


def main():
    parser = argparse.ArgumentParser(
        prog=PROG, description="Plot a lapicque output file to PNG (raster, rates, density, "
        "histograms, moments, balance, trees, timers).")
    parser.add_argument("file", help="output file (HDF5) of `lapicque run`")
    parser.add_argument("--outdir", help="directory for the PNGs (default: <stem>-plots/ "
                        "next to the file)")
    parser.add_argument("--times", help="histogram times in ms, comma-separated (nearest "
                        "sample; default: 4 evenly spaced sample times after the first)")
    parser.add_argument("--limit", metavar="OTHER.h5", help="another run or a mean-field "
                        "solution in the same layout, drawn dashed over histograms, rates "
                        "and moments")
    args = parser.parse_args()
    times = parse_times(args.times) if args.times is not None else None
    if times == []:
        fail("--times: no times given")

    f = open_output(args.file)
    limit = open_output(args.limit) if args.limit else None
    stem = os.path.splitext(os.path.basename(args.file))[0]
    outdir = args.outdir or os.path.join(os.path.dirname(os.path.abspath(args.file)),
                                         f"{stem}-plots")
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as e:
        fail(f"--outdir {outdir}: cannot be created ({e.strerror})")

    pops = populations(f)
    if not pops:
        fail(f"{args.file}: no populations")
    load_matplotlib()
    title = os.path.basename(args.file)
    written = []
    raster(f, pops, title, outdir, written)
    rates(f, pops, title, limit, outdir, written)
    density(f, pops, title, outdir, written)
    histograms(f, pops, title, times, limit, outdir, written)
    moments(f, pops, title, limit, outdir, written)
    balance(f, pops, title, outdir, written)
    trees(f, title, outdir, written)
    timers(f, title, outdir, written)
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
