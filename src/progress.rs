//! Progress of a run, reported by rank 0 only: a bar with ETA and real-time factor on a
//! terminal, plain periodic lines otherwise (batch logs).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    mode: Mode,
    n_steps: u64,
    dt: f64,
    start: Instant,
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
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(n_steps), ProgressDrawTarget::stderr());
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
        }
    }

    pub fn silent() -> Self {
        Progress::new(false, 0, 0.0, 1.0)
    }

    fn status(&self, step: u64) -> String {
        let wall = self.start.elapsed().as_secs_f64();
        let model_ms = step as f64 * self.dt;
        // Real-time factor: wall seconds per second of model time.
        let rtf = if model_ms > 0.0 {
            wall / (model_ms / 1000.0)
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
                if step % 64 == 0 || step == self.n_steps {
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
                    let eta = wall * (self.n_steps - step) as f64 / step as f64;
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
