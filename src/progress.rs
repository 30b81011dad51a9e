//! Progress of a run, reported by rank 0 only: a bar with ETA and real-time factor on a
//! terminal, plain periodic lines otherwise (batch logs).
//!
//! Under `mpirun` a rank's stderr is a pipe to the launcher even when the launcher writes to a
//! terminal, so rank 0 also looks at its parent's stderr (Linux `/proc`) and, when that is a
//! terminal, draws the bar with plain ANSI sequences through the pipe.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    mode: Mode,
    n_steps: u64,
    dt: f64,
    start: Instant,
    /// The step this process started at (not 0 when resuming from a checkpoint).
    first: u64,
}

enum Mode {
    Silent,
    Bar(ProgressBar),
    Lines { every: Duration, next: Instant },
}

impl Progress {
    /// `show`: whether this process reports (rank 0). `interval`: seconds between plain lines.
    pub fn new(show: bool, n_steps: u64, dt: f64, interval: f64) -> Self {
        let start = Instant::now();
        let mode = if !show {
            Mode::Silent
        } else if stderr_reaches_terminal() {
            let target = ProgressDrawTarget::term_like_with_hz(Box::new(AnsiStderr), 4);
            let bar = ProgressBar::with_draw_target(Some(n_steps), target);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {percent:>3}% {msg} ETA {eta}")
                    .expect("static template is valid"),
            );
            Mode::Bar(bar)
        } else {
            let every = Duration::from_secs_f64(interval);
            Mode::Lines {
                every,
                next: start + every,
            }
        };
        Progress {
            mode,
            n_steps,
            dt,
            start,
            first: 0,
        }
    }

    /// A run resumed at `step`: speed and ETA count only the steps this process makes.
    pub fn starting_at(mut self, step: u64) -> Self {
        self.first = step;
        self
    }

    pub fn silent() -> Self {
        Progress::new(false, 0, 0.0, 1.0)
    }

    fn status(&self, step: u64) -> String {
        let wall = self.start.elapsed().as_secs_f64();
        let model_ms = step as f64 * self.dt;
        let done_ms = step.saturating_sub(self.first) as f64 * self.dt;
        // Real-time factor: wall seconds per second of model time.
        let rtf = if done_ms > 0.0 {
            wall / (done_ms / 1000.0)
        } else {
            0.0
        };
        format!(
            "t = {model_ms:.1}/{:.1} ms, {rtf:.2} s per model s",
            self.n_steps as f64 * self.dt
        )
    }

    /// Called after step `step` (1-based count of steps done).
    pub fn tick(&mut self, step: u64) {
        let status = |s: &Self| s.status(step);
        match &self.mode {
            Mode::Silent => {}
            Mode::Bar(bar) => {
                if step.is_multiple_of(64) || step == self.n_steps {
                    bar.set_position(step);
                    bar.set_message(status(self));
                }
            }
            Mode::Lines { every, next } => {
                let now = Instant::now();
                if now >= *next {
                    let every = *every;
                    self.mode = Mode::Lines {
                        every,
                        next: now + every,
                    };
                    let wall = self.start.elapsed().as_secs_f64();
                    let done = step.saturating_sub(self.first).max(1);
                    let eta = wall * (self.n_steps - step) as f64 / done as f64;
                    let pct = 100.0 * step as f64 / self.n_steps as f64;
                    eprintln!(
                        "lapicque: {pct:5.1}% {}, elapsed {wall:.1} s, ETA {eta:.1} s",
                        self.status(step)
                    );
                }
            }
        }
    }

    pub fn finish(&mut self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }
}

/// Whether what this process writes to stderr ends up on a terminal: its own stderr is one, or
/// its parent (the MPI launcher, which forwards our stderr) writes to one.
fn stderr_reaches_terminal() -> bool {
    if std::io::stderr().is_terminal() {
        return true;
    }
    let parent = std::os::unix::process::parent_id();
    std::fs::read_link(format!("/proc/{parent}/fd/2")).is_ok_and(|p| {
        let p = p.to_string_lossy();
        p.starts_with("/dev/pts/") || p.starts_with("/dev/tty")
    })
}

/// A terminal reached through a pipe: ANSI cursor sequences written to stderr.
#[derive(Debug)]
struct AnsiStderr;

impl AnsiStderr {
    fn put(&self, s: &str) -> std::io::Result<()> {
        std::io::stderr().write_all(s.as_bytes())
    }
    fn cursor(&self, n: usize, code: char) -> std::io::Result<()> {
        if n > 0 {
            self.put(&format!("\x1b[{n}{code}"))?;
        }
        Ok(())
    }
}

impl TermLike for AnsiStderr {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'A')
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'B')
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'C')
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'D')
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.put(&format!("{s}\n"))
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.put(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.put("\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
