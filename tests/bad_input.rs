//! Invalid configurations are refused on every rank with one line naming the key and the
//! value, a non-zero exit, no hang, and no output file.

mod common;

use std::time::Duration;

const BASE: &str = r#"
[simulation]
t_stop = 10.0
[population.E]
size = 30
[projection.EE]
source = "E"
target = "E"
rule = "fixed_indegree"
indegree = 5
weight = 0.1
delay = 1.0
"#;

/// (description, configuration text, what the error line must contain)
fn cases() -> Vec<(&'static str, String, &'static str)> {
    vec![
        (
            "unknown key",
            BASE.replace("size = 30", "size = 30\ntau_mem = 10.0"),
            "population.E.tau_mem",
        ),
        (
            "negative time constant",
            BASE.replace("size = 30", "size = 30\ntau_m = -20.0"),
            "population.E.tau_m = -20",
        ),
        (
            "delay shorter than dt",
            BASE.replace("delay = 1.0", "delay = 0.05"),
            "projection.EE.delay = 0.05",
        ),
        (
            "missing population",
            BASE.replace("source = \"E\"", "source = \"Q\""),
            "projection.EE.source = \"Q\"",
        ),
    ]
}

#[test]
fn invalid_configs_fail_cleanly_on_three_ranks() {
    let dir = common::scratch("bad_input");
    for (what, text, expect) in cases() {
        let config = dir.join("bad.toml");
        std::fs::write(&config, &text).unwrap();
        let out = dir.join("out.h5");
        // Each rank records its own exit code, so the test sees every rank's verdict; the
        // wrapper itself exits 0, so mpirun adds nothing to stderr.
        let script = format!(
            "{} run {} -o {}; echo $? > {}/rc.$OMPI_COMM_WORLD_RANK",
            common::binary(),
            config.display(),
            out.display(),
            dir.display()
        );
        let cmd = common::mpirun_program(3, "sh", &["-c", &script]);
        let o = common::run_with_timeout(cmd, Duration::from_secs(60));
        assert!(
            o.status.success(),
            "{what}: the wrapper itself failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for rank in 0..3 {
            let rc = std::fs::read_to_string(dir.join(format!("rc.{rank}"))).unwrap_or_default();
            assert_eq!(rc.trim(), "2", "{what}: rank {rank} exit code {rc:?}");
            std::fs::remove_file(dir.join(format!("rc.{rank}"))).unwrap();
        }
        let stderr = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: expected one line, got {stderr:?}");
        assert!(
            lines[0].contains(expect),
            "{what}: {:?} does not name {expect:?}",
            lines[0]
        );
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("out"))
            .collect();
        assert!(leftovers.is_empty(), "{what}: left {leftovers:?}");

        // `lapicque check` gives the same verdict without MPI.
        let o = std::process::Command::new(common::binary())
            .args(["check", config.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{what}: check exit code");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(expect),
            "{what}: check output"
        );
    }
}

#[test]
fn unwritable_output_directory_fails_before_running() {
    let dir = common::scratch("bad_output");
    let config = dir.join("ok.toml");
    std::fs::write(&config, BASE).unwrap();
    let out = dir.join("no/such/dir/out.h5");
    let o = common::run_with_timeout(
        common::mpirun(
            2,
            &["run", config.to_str().unwrap(), "-o", out.to_str().unwrap()],
        ),
        Duration::from_secs(60),
    );
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("output.path") && stderr.contains("does not exist"),
        "{stderr}"
    );
}
