//! The configuration loader never panics: arbitrary text, arbitrary mutations of the shipped
//! configurations and arbitrary `--set` overrides all end in `Ok` or a one-line error.
//!
//! Property-based fuzzing with proptest; the case counts keep the test within a few seconds.
//! Failing inputs, if any, are stored by proptest in `tests/fuzz_config.proptest-regressions`
//! and replayed first on every run.

mod common;

use lapicque::config::Config;
use proptest::prelude::*;

fn load(text: &str, sets: &[String]) {
    if let Err(e) = Config::from_toml(text, sets) {
        let line = e.to_string();
        assert!(!line.contains('\n'), "multi-line error: {line:?}");
        assert!(!line.is_empty());
    }
}

fn shipped() -> Vec<String> {
    [
        "configs/brunel.toml",
        "configs/smoke.toml",
        "configs/reference.toml",
    ]
    .iter()
    .map(|p| std::fs::read_to_string(common::repo().join(p)).unwrap())
    .collect()
}

/// Fragments the mutations splice in: keys, values and TOML punctuation.
const PIECES: &[&str] = &[
    "[population.E]",
    "[projection.X]",
    "size = ",
    "indegree = ",
    "p = ",
    "delay = ",
    "dt = ",
    "nan",
    "inf",
    "-inf",
    "0",
    "-1",
    "1e308",
    "18446744073709551615",
    "99999999999999999999",
    "\"",
    "[",
    "]",
    "{",
    "}",
    "=",
    "\n",
    ".",
    "source = \"E\"",
    "rule = \"bernoulli\"",
    "true",
    "[[population]]",
    "t_stop = 0.3",
    "e_l = ",
    "\u{0}",
    "é",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        load(&text, &[]);
    }

    #[test]
    fn mutated_configs_never_panic(
        which in 0usize..3,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..3, any::<prop::sample::Index>()), 1..6),
    ) {
        let mut text = shipped()[which].clone().into_bytes();
        for (at, kind, piece) in edits {
            let i = at.index(text.len() + 1).min(text.len());
            match kind {
                0 => { text.truncate(i); }
                1 => { if i < text.len() { text.remove(i); } }
                _ => {
                    let p = piece.get(PIECES).as_bytes();
                    text.splice(i..i, p.iter().copied());
                }
            }
        }
        load(&String::from_utf8_lossy(&text), &[]);
    }

    #[test]
    fn arbitrary_overrides_never_panic(
        key in "[a-z_.]{0,30}",
        value in prop::sample::select(PIECES.to_vec()),
        tail in ".{0,10}",
    ) {
        let text = &shipped()[1];
        load(text, &[format!("{key}={value}{tail}")]);
        load(text, &[format!("{key}{tail}")]);
    }
}
