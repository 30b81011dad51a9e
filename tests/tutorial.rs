//! docs/tutorial.md works as written: every ```sh and ```python block runs, in order, in a
//! fresh directory that sees the repository's `configs`, `scripts`, `target`, `python` and
//! `.venv` (so outputs stay out of the tree), shell blocks with bash -e, Python blocks with the
//! set-up's `.venv/bin/python`; each must succeed, and every picture the tutorial shows
//! (`![...](tutorial/NAME.png)`) must have been drawn by the blocks, as a PNG. The Python
//! blocks assert what they claim (rates rising with the stimulus, the limit near the runs).

mod common;

use std::process::Command;
use std::time::Duration;

#[test]
fn the_tutorial_runs_as_written() {
    let repo = common::repo();
    let text = std::fs::read_to_string(repo.join("docs/tutorial.md")).unwrap();
    let python = repo.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: scripts/setup.sh makes it",
        python.display()
    );
    let dir = common::scratch("tutorial");
    for link in ["configs", "scripts", "target", "python", ".venv"] {
        std::os::unix::fs::symlink(repo.join(link), dir.join(link)).unwrap();
    }
    // The tutorial's own files, and the directory its pictures go to, as in docs/.
    let docs = dir.join("docs/tutorial");
    std::fs::create_dir_all(&docs).unwrap();
    for entry in std::fs::read_dir(repo.join("docs/tutorial")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&p, docs.join(p.file_name().unwrap())).unwrap();
        }
    }
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, l) if l == "```sh" || l == "```python" => {
                current = Some((l[3..].to_string(), String::new()));
            }
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some((_, body)), l) => {
                body.push_str(l);
                body.push('\n');
            }
            _ => {}
        }
    }
    assert!(
        blocks.iter().filter(|(k, _)| k == "python").count() >= 3
            && blocks.iter().any(|(k, _)| k == "sh"),
        "the tutorial has too few blocks: {}",
        blocks.len()
    );
    for (i, (kind, body)) in blocks.iter().enumerate() {
        // `scripts/setup.sh` installs and builds: the test suite has done that already.
        let body: String = body
            .lines()
            .filter(|l| !l.trim_start().starts_with("scripts/setup.sh"))
            .map(|l| format!("{l}\n"))
            .collect();
        let file = dir.join(format!(
            "block{i}.{}",
            if kind == "sh" { "sh" } else { "py" }
        ));
        std::fs::write(&file, &body).unwrap();
        let mut cmd = if kind == "sh" {
            let mut c = Command::new("bash");
            c.arg("-euo").arg("pipefail").arg(&file);
            c
        } else {
            let mut c = Command::new(&python);
            c.arg(&file);
            c
        };
        cmd.current_dir(&dir);
        let o = common::run_with_timeout(cmd, Duration::from_secs(600));
        assert!(
            o.status.success(),
            "tutorial block {i} ({kind}) failed:\n{body}\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        println!(
            "block {i} ({kind}) ok:\n{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    let mut pictures = 0;
    for part in text.split("![").skip(1) {
        let Some(name) = part
            .split_once("](tutorial/")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(name, _)| name)
        else {
            continue;
        };
        let drawn = std::fs::read(docs.join(name))
            .unwrap_or_else(|_| panic!("the tutorial shows tutorial/{name}, which no block drew"));
        assert!(
            drawn.starts_with(b"\x89PNG") && drawn.len() > 5000,
            "tutorial/{name} is not a picture"
        );
        assert!(
            repo.join("docs/tutorial").join(name).exists(),
            "tutorial/{name} is not committed in docs/tutorial"
        );
        pictures += 1;
    }
    assert!(pictures >= 4, "{pictures} pictures");
}
