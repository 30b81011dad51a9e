//! The synapses of a network as a SONATA edges file (`lapicque edges`): one edge population per
//! projection, `/edges/<projection>/source_node_id` and `target_node_id` (offsets within the
//! source and target populations, with their `node_population` attributes), `edge_type_id`
//! (0), `edge_group_id` (0) and `edge_group_index` (the edge's index), and in group `0` the
//! per-edge `syn_weight` \[mV\] and `delay` \[ms\], and SONATA's `indices` (`source_to_target`
//! and `target_to_source`: `node_id_to_ranges`, `range_to_edge_id`) that readers such as
//! libsonata use for afferent and efferent queries. Every rank writes the synapses of its own
//! targets as one slab, ordered by target and, for each target, in the order of its tables
//! (delay, source, synapse): the file is the same for any number of ranks, and `rule = "file"`
//! reads back the same network, the same synapses in the same order for every target.

use crate::comm::Comm;
use crate::config::Config;
use crate::connectivity::Connectivity;
use crate::h5::{attr_str, dataset, write_file, RawWrites};
use crate::Error;
use hdf5::File;
use std::ops::Range;
use std::path::Path;

/// One projection's local edges: source and target node ids, weights, delays.
#[derive(Default)]
struct Edges {
    source: Vec<u64>,
    target: Vec<u64>,
    weight: Vec<f64>,
    delay: Vec<f64>,
}

/// Writes the synapses of `conn` (this rank's targets `local`) to `path` (collective).
pub fn write_sonata(
    path: &Path,
    config: &Config,
    comm: &dyn Comm,
    conn: &Connectivity,
    local: &Range<u64>,
) -> Result<(), Error> {
    write_file(path, comm, |file, w| {
        write_edges(file, config, comm, conn, local, w)
    })
}

fn write_edges(
    file: &File,
    config: &Config,
    comm: &dyn Comm,
    conn: &Connectivity,
    local: &Range<u64>,
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    crate::h5::attr_str(file, "format", "lapicque-edges")?;
    crate::h5::attr_str(file, "config", &config.resolved_toml())?;
    let root = file.create_group("edges")?;
    for (k, proj) in config.projections.iter().enumerate() {
        let (src, tgt) = (
            &config.populations[proj.source],
            &config.populations[proj.target],
        );
        let mut e = Edges::default();
        for table in conn.tables_of(k) {
            let delay = config.time(u64::from(table.delay_steps));
            for (s, _, range) in table.runs() {
                let source = table.source_start + s - src.gid_start;
                for k in range {
                    e.source.push(source);
                    e.target
                        .push(local.start + u64::from(table.targets().get(k)) - tgt.gid_start);
                    e.weight.push(table.weight_at(k));
                    e.delay.push(delay);
                }
            }
        }
        // By target (a stable sort: each target's synapses stay in table order), so that the
        // file does not depend on the decomposition.
        let mut order: Vec<usize> = (0..e.source.len()).collect();
        order.sort_by_key(|&i| e.target[i]);
        let permute = |v: &[u64]| -> Vec<u64> { order.iter().map(|&i| v[i]).collect() };
        let permute_f = |v: &[f64]| -> Vec<f64> { order.iter().map(|&i| v[i]).collect() };
        let e = Edges {
            source: permute(&e.source),
            target: permute(&e.target),
            weight: permute_f(&e.weight),
            delay: permute_f(&e.delay),
        };
        let counts = comm.all_gather_u64(e.source.len() as u64);
        let total = counts.iter().sum::<u64>() as usize;
        let offset = counts[..comm.rank()].iter().sum::<u64>() as usize;
        let slab = offset..offset + e.source.len();
        let g = root.create_group(&proj.name)?;
        let group0 = g.create_group("0")?;
        let index: Vec<u64> = (slab.start as u64..slab.end as u64).collect();
        let zeros = vec![0u64; e.source.len()];
        let columns: [(&hdf5::Group, &str, &str, &str, Option<&str>); 5] = [
            (
                &g,
                "source_node_id",
                "1",
                "source: offset within the source population",
                Some(&src.name),
            ),
            (
                &g,
                "target_node_id",
                "1",
                "target: offset within the target population",
                Some(&tgt.name),
            ),
            (&g, "edge_type_id", "1", "edge type (one type, 0)", None),
            (&g, "edge_group_id", "1", "edge group (one group, 0)", None),
            (
                &g,
                "edge_group_index",
                "1",
                "index of the edge in group 0",
                None,
            ),
        ];
        let data: [&[u64]; 5] = [&e.source, &e.target, &zeros, &zeros, &index];
        for ((g, name, units, description, population), values) in columns.into_iter().zip(data) {
            let ds = dataset::<u64>(g, name, &[total], units, description)?;
            if let Some(p) = population {
                attr_str(&ds, "node_population", p)?;
            }
            if !slab.is_empty() {
                w.keep(ds.write_slice(values, slab.clone()));
            }
        }
        for (name, units, description, values) in [
            (
                "syn_weight",
                "mV",
                "jump of the target's V per spike",
                &e.weight,
            ),
            ("delay", "ms", "transmission delay", &e.delay),
        ] {
            let ds = dataset::<f64>(&group0, name, &[total], units, description)?;
            if !slab.is_empty() {
                w.keep(ds.write_slice(values, slab.clone()));
            }
        }
        // The indices that SONATA readers use to find a node's edges; every rank computes
        // them from all edges' node ids, rank 0 writes them.
        let all = |local: &[u64]| {
            let local: Vec<u32> = local
                .iter()
                .map(|&x| u32::try_from(x).expect("validated: node ids fit u32"))
                .collect();
            let mut out = Vec::with_capacity(total);
            comm.all_gather_u32(&local, &mut out);
            out
        };
        let indices = g.create_group("indices")?;
        for (name, ids, nodes) in [
            ("source_to_target", all(&e.source), src.size),
            ("target_to_source", all(&e.target), tgt.size),
        ] {
            let (node_ranges, ranges) = edge_index(&ids, nodes as usize);
            let ig = indices.create_group(name)?;
            crate::h5::replicated(
                &ig,
                "node_id_to_ranges",
                node_ranges.as_flattened(),
                &[node_ranges.len(), 2],
                "1",
                "per node id: first and one-past-last row of range_to_edge_id ([0, 0]: no edges)",
                w,
            )?;
            crate::h5::replicated(
                &ig,
                "range_to_edge_id",
                ranges.as_flattened(),
                &[ranges.len(), 2],
                "1",
                "first and one-past-last edge id of a run of consecutive edges of one node",
                w,
            )?;
        }
    }
    Ok(())
}

/// SONATA's edge index over the node ids `ids` of every edge (by edge id), for `nodes` nodes:
/// the maximal runs of consecutive edges with the same node id (`range_to_edge_id`, grouped by
/// node id, in edge order within a node) and, per node id, its rows there
/// (`node_id_to_ranges`, `[0, 0]` for a node without edges).
#[allow(clippy::type_complexity)]
fn edge_index(ids: &[u32], nodes: usize) -> (Vec<[u64; 2]>, Vec<[u64; 2]>) {
    let mut runs: Vec<(u32, u64, u64)> = Vec::new();
    for (e, &id) in ids.iter().enumerate() {
        match runs.last_mut() {
            Some((last, _, end)) if *last == id && *end == e as u64 => *end += 1,
            _ => runs.push((id, e as u64, e as u64 + 1)),
        }
    }
    // Stable: within a node the runs stay in edge order.
    runs.sort_by_key(|r| r.0);
    let mut node_ranges = vec![[0u64; 2]; nodes];
    for (k, &(id, _, _)) in runs.iter().enumerate() {
        let r = &mut node_ranges[id as usize];
        if r[1] == 0 {
            r[0] = k as u64;
        }
        r[1] = k as u64 + 1;
    }
    let ranges = runs.iter().map(|&(_, a, b)| [a, b]).collect();
    (node_ranges, ranges)
}
