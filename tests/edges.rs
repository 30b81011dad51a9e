//! `lapicque edges`: the synapses of a network written as a SONATA edges file (the same file on
//! 1 and 3 ranks) and read back by `rule = "file"` give the same run as the generated network,
//! byte for byte (constant, random and multi-delay projections), and the file follows the
//! SONATA layout.

mod common;

use hdf5::File;

const NETWORK: &str = r#"
[simulation]
t_stop = 200.0
seed = 4242
[population.E]
size = 400
sigma = 1.0
i_e = 1.2
v_init_min = 0.0
v_init_max = 20.0
[population.I]
size = 100
sigma = 1.0
i_e = 1.2
v_init_min = 0.0
v_init_max = 20.0
"#;

const GENERATED: &str = r#"
[projection.EE]
source = "E"
target = "E"
rule = "fixed_indegree"
indegree = 40
weight = 0.2
delay = 1.5
[projection.EI]
source = "E"
target = "I"
rule = "bernoulli"
p = 0.1
weight = 0.3
delay = 0.8
delay_max = 2.0
[projection.IE]
source = "I"
target = "E"
rule = "fixed_indegree"
indegree = 10
weight = -0.5
weight_dist = "normal"
weight_sd = 0.3
delay = 1.0
"#;

#[test]
fn exported_edges_read_back_give_the_same_run() {
    let dir = common::scratch("edges_round_trip");
    let generated = dir.join("generated.toml");
    std::fs::write(&generated, format!("{NETWORK}{GENERATED}")).unwrap();
    let edges = dir.join("net_edges.h5");
    let o = common::mpirun(
        3,
        &[
            "edges",
            generated.to_str().unwrap(),
            "-o",
            edges.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The same file from one rank.
    let one = dir.join("one_rank.h5");
    let o = common::mpirun(
        1,
        &[
            "edges",
            generated.to_str().unwrap(),
            "-o",
            one.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(common::datasets(&edges), common::datasets(&one));

    // The layout, and the synapse counts of the rules.
    let f = File::open(&edges).unwrap();
    let n = |p: &str| {
        f.dataset(&format!("edges/{p}/source_node_id"))
            .unwrap()
            .size()
    };
    assert_eq!(n("EE"), 400 * 40);
    assert_eq!(n("IE"), 400 * 10);
    let ei = n("EI") as f64;
    assert!(
        (ei - 0.1 * 400.0 * 100.0).abs() < 5.0 * (4000.0f64 * 0.9).sqrt(),
        "{ei}"
    );
    let text = |ds: &hdf5::Dataset| -> String {
        ds.attr("node_population")
            .unwrap()
            .read_scalar::<hdf5::types::VarLenUnicode>()
            .unwrap()
            .as_str()
            .to_string()
    };
    let ie_src = f.dataset("edges/IE/source_node_id").unwrap();
    let ie_tgt = f.dataset("edges/IE/target_node_id").unwrap();
    assert_eq!((text(&ie_src), text(&ie_tgt)), ("I".into(), "E".into()));
    assert!(ie_src.read_raw::<u64>().unwrap().iter().all(|&s| s < 100));
    let w: Vec<f64> = f
        .dataset("edges/IE/0/syn_weight")
        .unwrap()
        .read_raw()
        .unwrap();
    assert!(w.iter().any(|&x| x != w[0]) && w.iter().all(|&x| x <= 0.0));
    let d: Vec<f64> = f.dataset("edges/EI/0/delay").unwrap().read_raw().unwrap();
    assert!(
        d.iter().any(|&x| x != d[0]),
        "EI should have several delays"
    );
    let index: Vec<u64> = f
        .dataset("edges/EE/edge_group_index")
        .unwrap()
        .read_raw()
        .unwrap();
    assert!(index.iter().enumerate().all(|(i, &x)| x == i as u64));
    // SONATA's indices (what libsonata's afferent and efferent queries read): for every node,
    // the edges its ranges list are exactly the edges whose node id column names it.
    for (proj, sizes) in [("EE", (400, 400)), ("EI", (400, 100)), ("IE", (100, 400))] {
        for (index, column, nodes) in [
            ("source_to_target", "source_node_id", sizes.0),
            ("target_to_source", "target_node_id", sizes.1),
        ] {
            let read = |p: &str| -> Vec<u64> {
                f.dataset(&format!("edges/{proj}/{p}"))
                    .unwrap()
                    .read_raw()
                    .unwrap()
            };
            let ids = read(column);
            let node_ranges = read(&format!("indices/{index}/node_id_to_ranges"));
            let ranges = read(&format!("indices/{index}/range_to_edge_id"));
            assert_eq!(node_ranges.len(), 2 * nodes, "{proj} {index}");
            let mut want: Vec<Vec<u64>> = vec![Vec::new(); nodes];
            for (e, &id) in ids.iter().enumerate() {
                want[id as usize].push(e as u64);
            }
            for (node, want) in want.iter().enumerate() {
                let (a, b) = (node_ranges[2 * node], node_ranges[2 * node + 1]);
                let mut got = Vec::new();
                for r in a..b {
                    let (s, e) = (ranges[2 * r as usize], ranges[2 * r as usize + 1]);
                    assert!(s < e, "{proj} {index}: empty range {r}");
                    got.extend(s..e);
                }
                got.sort_unstable();
                assert_eq!(&got, want, "{proj} {index}: node {node}");
            }
        }
    }
    drop(f);

    // The same network from the file (the file gives weights and delays).
    let from_file = dir.join("from_file.toml");
    let rule = |name: &str, source: &str, target: &str| {
        format!(
            "[projection.{name}]\nsource = \"{source}\"\ntarget = \"{target}\"\nrule = \"file\"\nfile = \"net_edges.h5\"\n"
        )
    };
    std::fs::write(
        &from_file,
        format!(
            "{NETWORK}{}{}{}",
            rule("EE", "E", "E"),
            rule("EI", "E", "I"),
            rule("IE", "I", "E")
        ),
    )
    .unwrap();
    let (a, b) = (dir.join("a.h5"), dir.join("b.h5"));
    common::run_ok(2, &generated, &a, &[]);
    common::run_ok(3, &from_file, &b, &[]);
    let spikes = File::open(&a)
        .unwrap()
        .dataset("spikes/E/node_ids")
        .unwrap()
        .size();
    assert!(spikes > 1000, "only {spikes} spikes");
    common::assert_same_results(&a, &b);
}
