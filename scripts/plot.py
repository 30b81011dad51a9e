#!/usr/bin/python3
"""Plot an output file of `lapicque run` (or a mean-field solution in the same layout) to PNG.

    scripts/plot.py OUT.h5 [--outdir DIR] [--times T1,T2,...] [--limit OTHER.h5]

Writes into DIR (default: `<stem>-plots/` next to OUT.h5) whichever of these the file allows:

    raster.png          spikes of at most 50 neurons per population (evenly spaced ids among
                        the recorded ones), at most ~200k dots (the time window is shortened
                        if needed)
    rates.png           population rates over time [Hz]
    density.png         the empirical density f(t, v) of V per population, time x bin [1/mV]
    histograms.png      f(t, v) at chosen times (--times, in ms, nearest sample; default: the
                        samples nearest 1/4, 1/2, 3/4 and all of the way from the first to
                        the last)
    moments.png         mean of V +- one standard deviation over time [mV]
    balance.png         mean excitatory, inhibitory, external and net input per population
                        [mV/ms]
    trees.png           tree-indexed observables over time, one line per tree (trees with
                        different units, or sizes differing by more than a factor of 10, in
                        panels of their own)
    labels.png          /labels: density of each class's label probability lambda_k on [0, 1]
                        over time, one image per population and class
    densities.png       /densities: the extended density f(t, xi, v) at the last sample time,
                        one image per population
    snapshots.png       /snapshots: the distribution of V at each snapshot time per population
                        (histograms overlaid, or an image when there are more than 8)
    pair_histogram.png  /pair_histogram: H(target bin, source bin) at the last sample time
    record.png          /record: the recorded variables over time, one panel per population
                        and variable, one line per recorded neuron (at most 20; of lambda
                        lambda_1, of beta beta_12)
    timers.png          wall time per phase and rank [s], stacked

V is in the units its dataset states (mV), except for FitzHugh-Nagumo populations (model
"fhn"), whose V is dimensionless ([1]).

With --limit OTHER.h5, rates, histograms and moments of OTHER.h5 are drawn dashed in the
colours of OUT.h5's lines, with a legend naming both files by kind ("run", or "limit" for a
mean-field file) and name. If OTHER.h5 was made from a different configuration (other than in
output.*, observables.*, checkpoint.*, meanfield.*, simulation.seed, simulation.exchange and
population sizes), one warning line on stderr names the first differing key; it is plotted
anyway. Prints the PNGs written.
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


def describe(f):
    """The file's kind and name, for legends: "run (a.h5)", "limit (b.h5)" (mean-field)."""
    kind = text(f, "kind", "run") or "run"
    kind = "limit" if kind == "meanfield" else kind
    return f"{kind} ({os.path.basename(f.filename)})"


def colour(k):
    """The k-th colour of the default cycle (one per population, in gid order)."""
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return cycle[k % len(cycle)]


# Units of a population's quantities when its V is dimensionless (FitzHugh-Nagumo).
FHN_UNITS = {"mV": "1", "1/mV": "1", "mV^2": "1", "mV/ms": "1/ms"}


def units(f, name, ds, default):
    """The units of a quantity of population `name` (None: of the file): the `units`
    attribute of its dataset `ds` (or `default`), with mV made dimensionless for
    FitzHugh-Nagumo populations."""
    u = (text(ds, "units") if ds is not None else "") or default
    if name is not None and name in f["populations"] \
            and text(f["populations"][name], "model") == "fhn":
        u = FHN_UNITS.get(u, u)
    return u


def v_units(f, ds, default="mV"):
    """The units of V for a quantity over all populations: dimensionless if every
    population is FitzHugh-Nagumo, else those of `ds`."""
    u = (text(ds, "units") if ds is not None else "") or default
    if all(text(g, "model") == "fhn" for g in f["populations"].values()):
        u = FHN_UNITS.get(u, u)
    return u


# Configuration keys in which a limit may differ from the run it is drawn over.
FREE_SECTIONS = ("output", "observables", "checkpoint", "meanfield")
FREE_KEYS = ("simulation.seed", "simulation.exchange")


def flatten(table, prefix=""):
    """{"a.b.c": value} for a parsed TOML table (arrays are values)."""
    flat = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def free(key):
    parts = key.split(".")
    return (parts[0] in FREE_SECTIONS or key in FREE_KEYS
            or (len(parts) == 3 and parts[0] == "population" and parts[2] == "size"))


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def check_config(f, limit, path):
    """One warning line when `limit` was made from another configuration than `f` (apart
    from the keys that may differ, `free`). Skipped without tomllib or a readable config."""
    try:
        import tomllib
    except ImportError:
        return
    if not text(f, "config") or not text(limit, "config"):
        return
    try:
        here, there = (flatten(tomllib.loads(text(x, "config"))) for x in (f, limit))
    except tomllib.TOMLDecodeError:
        return
    absent = object()
    for key in list(here) + [k for k in there if k not in here]:
        a, b = here.get(key, absent), there.get(key, absent)
        if free(key) or a == b:
            continue
        a = "absent" if a is absent else toml_value(a)
        b = "absent" if b is absent else toml_value(b)
        print(f"{PROG}: warning: --limit {path} was made from a different configuration "
              f"(first difference: {key} = {a} here, {b} there)", file=sys.stderr)
        return


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
    for k, (ax, (name, _)) in enumerate(zip(axes, pops)):
        if name not in f["rates"]:
            continue
        r = f["rates"][name][:]
        who = describe(f) if limit is not None else name
        ax.step(np.append(t, t[-1] + width), np.append(r, r[-1]), where="post", lw=0.8,
                color=colour(k), label=f"{who}: mean {r.mean():.2f} Hz")
        if limit is not None and "rates" in limit and name in limit["rates"]:
            lt = limit["rates/time"][:]
            lr = limit["rates"][name][:]
            ax.plot(lt + 0.5 * width, lr, "--", color=colour(k), lw=1.0,
                    label=f"{describe(limit)}: mean {lr.mean():.2f} Hz")
        ax.set_ylabel(f"{name}: rate [Hz]")
        ax.legend(loc="upper right", fontsize="small")
    axes[-1].set_xlabel("time [ms]")
    axes[0].set_title(f"{title}: population rates in bins of {width:g} ms")
    save(fig, outdir, "rates.png", written)


def cells(t):
    """Edges of cells centred on the sample times t."""
    if len(t) > 1:
        mid = 0.5 * (t[1:] + t[:-1])
        return np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])
    return np.array([t[0] - 0.5, t[0] + 0.5])


def sqrt_image(fig, ax, x, y, c, label):
    """c (len(y) - 1 x len(x) - 1, non-negative) as an image with a colour bar, on a
    square-root colour scale saturating above the 99.5% quantile (the initial condition is
    often a point mass that would swamp everything else)."""
    top = float(np.quantile(c, 0.995)) if c.size else 1.0
    top = top if top > 0 else max(float(c.max()) if c.size else 0.0, 1e-12)
    norm = matplotlib.colors.PowerNorm(0.5, vmin=0.0, vmax=top)
    mesh = ax.pcolormesh(x, y, c, shading="flat", cmap="viridis", norm=norm)
    extend = "max" if c.size and c.max() > top else "neither"
    fig.colorbar(mesh, ax=ax, label=label, extend=extend)


def density(f, pops, title, outdir, written):
    if "histograms" not in f or "edges" not in f["histograms"]:
        return
    t, edges = f["histograms/time"][:], f["histograms/edges"][:]
    if len(t) == 0:
        return
    tx = cells(t)
    fig, axes = panels(len(pops), height=2.8)
    for ax, (name, _) in zip(axes, pops):
        if name not in f["histograms"]:
            continue
        h = f["histograms"][name][:]
        sqrt_image(fig, ax, tx, edges, h.T,
                   f"f [{units(f, name, f['histograms'][name], '1/mV')}]")
        ax.set_ylabel(f"{name}: V [{units(f, name, f['histograms/edges'], 'mV')}]")
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
        # One colour per time, the run's solid and the limit's dashed.
        for j, k in enumerate(picks):
            color = cmap(j / max(1, len(picks) - 1) * 0.9)
            ax.stairs(h[k], edges, color=color, lw=1.2, label=f"t = {t[k]:g} ms")
            if has_limit and name in limit["histograms"]:
                lk = nearest(lt, t[k])
                ax.stairs(limit["histograms"][name][lk], ledges, color=color, lw=1.0,
                          linestyle="--")
        handles, _ = ax.get_legend_handles_labels()
        if has_limit and name in limit["histograms"]:
            line = matplotlib.lines.Line2D
            handles += [line([], [], color="grey", lw=1.2, label=describe(f)),
                        line([], [], color="grey", lw=1.0, ls="--", label=describe(limit))]
        ax.set_ylabel(f"{name}: f [{units(f, name, f['histograms'][name], '1/mV')}]")
        ax.set_xlabel(f"V [{units(f, name, f['histograms/edges'], 'mV')}]")
        ax.legend(handles=handles, loc="upper left", fontsize="small")
    axes[0].set_title(f"{title}: density of V at sample times")
    save(fig, outdir, "histograms.png", written)


def moments(f, pops, title, limit, outdir, written):
    if "moments" not in f or "time" not in f["moments"]:
        return
    t = f["moments/time"][:]
    fig, axes = panels(len(pops), height=2.4)
    for k, (ax, (name, _)) in enumerate(zip(axes, pops)):
        if name not in f["moments"]:
            continue
        g = f["moments"][name]
        m = g["mean"][:]
        sd = np.sqrt(np.maximum(g["variance"][:], 0.0))
        who = describe(f) if limit is not None else name
        ax.plot(t, m, color=colour(k), lw=1.0, label=f"{who}: mean")
        ax.fill_between(t, m - sd, m + sd, color=colour(k), alpha=0.3, label="mean +- sd")
        if limit is not None and "moments" in limit and name in limit["moments"]:
            lt = limit["moments/time"][:]
            lm = limit["moments"][name]["mean"][:]
            lsd = np.sqrt(np.maximum(limit["moments"][name]["variance"][:], 0.0))
            ax.plot(lt, lm, "--", color=colour(k), lw=1.0, label=f"{describe(limit)}: mean")
            ax.plot(lt, lm - lsd, ":", color=colour(k), lw=0.8, label="mean +- sd")
            ax.plot(lt, lm + lsd, ":", color=colour(k), lw=0.8)
        ax.set_ylabel(f"{name}: V [{units(f, name, g['mean'], 'mV')}]")
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
        unit = units(f, name, g["net"] if "net" in g else None, "mV/ms")
        ax.set_ylabel(f"{name}: input [{unit}]")
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
    # Trees with the same units share a panel when their sizes are comparable; else each
    # tree has a panel of its own.
    by_units = {}
    for line in lines:
        by_units.setdefault(line[3], []).append(line)
    rows = []
    for same in by_units.values():
        sizes = [float(np.max(np.abs(v[np.isfinite(v)]), initial=0.0)) for _, _, v, _ in same]
        positive = [s for s in sizes if s > 0]
        if not positive or max(positive) <= 10 * min(positive):
            rows.append(same)
        else:
            rows.extend([line] for line in same)
    if len(rows) == 1:
        fig, ax = plt.subplots(figsize=(9, 4))
        axes = [ax]
    else:
        fig, axes = panels(len(rows), height=2.2)
    names = [name for name, _, _, _ in lines]
    for ax, row in zip(axes, rows):
        for name, t, v, _ in row:
            ax.plot(t, v, lw=1.0, marker="." if len(t) <= 50 else None,
                    color=colour(names.index(name)), label=name)
        unit = f" [{row[0][3]}]" if row[0][3] else ""
        if len(row) > 1 or len(rows) == 1:
            ax.set_ylabel("<tau_N(T), phi>" + unit)
            ax.legend(loc="best", fontsize="small")
        else:
            ax.set_ylabel(f"{row[0][0]}{unit}")
    axes[-1].set_xlabel("time [ms]")
    axes[0].set_title(f"{title}: tree-indexed observables")
    save(fig, outdir, "trees.png", written)


def labels(f, pops, title, outdir, written):
    if "labels" not in f or "edges" not in f["labels"] or "histograms" not in f \
            or "time" not in f["histograms"]:
        return
    t, edges = f["histograms/time"][:], f["labels/edges"][:]
    shown = [(name, f["labels"][name]) for name, _ in pops if name in f["labels"]]
    shown = [(name, ds) for name, ds in shown if ds.ndim == 3 and ds.shape[0] == len(t)]
    if not shown or len(t) == 0:
        return
    tx = cells(t)
    fig, axes = panels(sum(ds.shape[1] for _, ds in shown), height=2.2)
    ax = iter(axes)
    for name, ds in shown:
        d = ds[:]
        for k in range(d.shape[1]):
            a = next(ax)
            sqrt_image(fig, a, tx, edges, d[:, k, :].T, f"density [{text(ds, 'units') or '1'}]")
            a.set_ylabel(f"{name}: lambda_{k + 1}")
    axes[-1].set_xlabel("time [ms]")
    axes[0].set_title(f"{title}: density of the label probabilities lambda_k")
    save(fig, outdir, "labels.png", written)


def densities(f, pops, title, outdir, written):
    if "densities" not in f or "xi_edges" not in f["densities"] or "histograms" not in f \
            or "edges" not in f["histograms"]:
        return
    xi, edges = f["densities/xi_edges"][:], f["histograms/edges"][:]
    t = f["histograms/time"][:] if "time" in f["histograms"] else np.zeros(0)
    shown = [(name, f["densities"][name]) for name, _ in pops if name in f["densities"]]
    shown = [(name, ds) for name, ds in shown if ds.ndim == 3 and ds.shape[0] > 0]
    if not shown:
        return
    fig, axes = panels(len(shown), height=2.8)
    for ax, (name, ds) in zip(axes, shown):
        sqrt_image(fig, ax, xi, edges, ds[-1].T, f"f [{units(f, name, ds, '1/mV')}]")
        ax.set_ylabel(f"{name}: V [{units(f, name, f['histograms/edges'], 'mV')}]")
    axes[-1].set_xlabel("xi")
    when = f" at t = {t[len(t) - 1]:g} ms" if len(t) == shown[0][1].shape[0] else ""
    axes[0].set_title(f"{title}: density of (xi, V){when}")
    save(fig, outdir, "densities.png", written)


MAX_OVERLAID = 8  # snapshots drawn as histograms; more as an image


def snapshots(f, pops, title, outdir, written):
    if "snapshots" not in f or "time" not in f["snapshots"] or "v" not in f["snapshots"]:
        return
    t, ds = f["snapshots/time"][:], f["snapshots/v"]
    if len(t) == 0 or ds.ndim != 2 or ds.shape[0] != len(t):
        return
    v = ds[:]
    cmap = plt.get_cmap("viridis")
    fig, axes = panels(len(pops), height=2.8, sharex=False)
    for ax, (name, size) in zip(axes, pops):
        start = int(f["populations"][name].attrs.get("gid_start", 0))
        x = v[:, start:start + size]
        finite = x[np.isfinite(x)]
        if finite.size == 0:
            continue
        lo, hi = float(finite.min()), float(finite.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        bins = np.linspace(lo, hi, 61)
        h = np.array([np.histogram(row[np.isfinite(row)], bins=bins)[0] for row in x])
        h = h / (x.shape[1] * (bins[1] - bins[0]))
        unit = units(f, name, ds, "mV")
        density_unit = "1" if unit == "1" else f"1/{unit}"
        if len(t) > MAX_OVERLAID:
            sqrt_image(fig, ax, cells(t), bins, h.T, f"f [{density_unit}]")
            ax.set_xlabel("time [ms]")
            ax.set_ylabel(f"{name}: V [{unit}]")
            continue
        # A snapshot with all of its neurons at one value (often the initial one) would
        # swamp the others: the axis is scaled to those with some spread.
        rows = [row[np.isfinite(row)] for row in x]
        spread = [k for k, r in enumerate(rows) if r.size and r.max() > r.min()]
        for j in range(len(t)):
            color = cmap(j / max(1, len(t) - 1) * 0.9)
            what = f" (all at {rows[j][0]:g})" if j not in spread and rows[j].size else ""
            ax.stairs(h[j], bins, color=color, lw=1.2, label=f"t = {t[j]:g} ms{what}")
        if spread:
            ax.set_ylim(0, 1.05 * max(float(h[k].max()) for k in spread))
        ax.set_xlabel(f"V [{unit}]")
        ax.set_ylabel(f"{name}: f [{density_unit}]")
        ax.legend(loc="upper left", fontsize="small")
    axes[0].set_title(f"{title}: V of every neuron at the snapshot times")
    save(fig, outdir, "snapshots.png", written)


def pair_histogram(f, title, outdir, written):
    g = f.get("pair_histogram")
    if g is None or "time" not in g or "edges" not in g or "value" not in g:
        return
    t, edges, ds = g["time"][:], g["edges"][:], g["value"]
    if len(t) == 0 or ds.ndim != 3 or ds.shape[0] != len(t):
        return
    h = ds[len(t) - 1]
    unit = v_units(f, g["edges"])
    # Signed (inhibitory weights are negative): a diverging scale centred on 0, saturating
    # above the 99.5% quantile of |H| (refractory neurons make a point mass at v_reset).
    size = np.abs(h[np.isfinite(h)])
    top = float(np.quantile(size, 0.995)) if size.size else 0.0
    top = top if top > 0 else float(np.max(size, initial=0.0)) or 1.0
    fig, ax = plt.subplots(figsize=(7, 6))
    mesh = ax.pcolormesh(edges, edges, h, shading="flat", cmap="RdBu_r", vmin=-top, vmax=top)
    fig.colorbar(mesh, ax=ax, label=f"H [{v_units(f, ds)}]",
                 extend="both" if size.size and size.max() > top else "neither")
    ax.set_aspect("equal")
    ax.set_xlabel(f"V source [{unit}]")
    ax.set_ylabel(f"V target [{unit}]")
    projections = text(g, "projections")
    what = f" ({projections})" if projections else ""
    ax.set_title(f"{title}: pair histogram{what} at t = {t[-1]:g} ms")
    save(fig, outdir, "pair_histogram.png", written)


MAX_TRACES = 20  # recorded neurons drawn per panel
RECORD_ORDER = ["v", "refractory_steps", "w", "syn_e", "syn_i", "lambda", "beta"]
# Of the 3-D variables one column: lambda_1, and beta_12 (the diagonal of beta is unused).
ONE_COLUMN = {"lambda": (0, "lambda_1"), "beta": (1, "beta_12")}


def record(f, pops, title, outdir, written):
    if "record" not in f or "time" not in f["record"]:
        return
    t = f["record/time"][:]
    rows = []  # (population, variable, dataset, node ids)
    for name, _ in pops:
        g = f["record"].get(name)
        if not isinstance(g, h5py.Group):
            continue
        ids = g["node_ids"][:] if "node_ids" in g else None
        found = sorted((v for v in g if v != "node_ids" and isinstance(g[v], h5py.Dataset)),
                       key=lambda v: (RECORD_ORDER.index(v) if v in RECORD_ORDER
                                      else len(RECORD_ORDER), v))
        for var in found:
            ds = g[var]
            if ds.ndim in (2, 3) and ds.shape[0] == len(t) and ds.shape[1] > 0 \
                    and (ds.ndim == 2 or ds.shape[2] > 0):
                rows.append((name, var, ds, ids if ids is not None else np.arange(ds.shape[1])))
    if not rows or len(t) == 0:
        return
    fig, axes = panels(len(rows), height=2.2)
    capped = False
    for ax, (name, var, ds, ids) in zip(axes, rows):
        n = ds.shape[1]
        keep = np.unique(np.linspace(0, n - 1, min(n, MAX_TRACES)).round().astype(np.int64))
        capped = capped or len(keep) < n
        what = var
        if ds.ndim == 3:
            column, what = ONE_COLUMN.get(var, (0, f"{var}[0]"))
            column = min(column, ds.shape[2] - 1)
            y = ds[:, :, column]
        else:
            y = ds[:]
        for k in keep:
            ax.plot(t, y[:, k], lw=0.8, label=f"id {ids[k]}" if k < len(ids) else None)
        unit = units(f, name, ds, "")
        ax.set_ylabel(f"{name}: {what}" + (f" [{unit}]" if unit else ""))
        if len(keep) <= 10:
            ax.legend(loc="upper right", fontsize="small", ncol=min(5, len(keep)))
    axes[-1].set_xlabel("time [ms]")
    what = f" (at most {MAX_TRACES} neurons per panel)" if capped else ""
    axes[0].set_title(f"{title}: recorded neurons{what}")
    save(fig, outdir, "record.png", written)


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
        "histograms, moments, balance, trees, labels, densities, snapshots, pair_histogram, "
        "record, timers).")
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
    if limit is not None:
        check_config(f, limit, args.limit)
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
    labels(f, pops, title, outdir, written)
    densities(f, pops, title, outdir, written)
    snapshots(f, pops, title, outdir, written)
    pair_histogram(f, title, outdir, written)
    record(f, pops, title, outdir, written)
    timers(f, title, outdir, written)
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
