//! `--progress`: how `up`, `create` and `run` show their work. On a terminal a live
//! line per service, redrawn while the executor works; otherwise one plain line per
//! action, JSON lines, or nothing.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_engine::container::Status;
use clap::ValueEnum;

use crate::reconcile::backend::EngineBackend;
use crate::reconcile::plan::Action;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Tty,
    Plain,
    Quiet,
    Json,
}

impl Mode {
    /// `auto` as what it means here: `tty` when stderr is a terminal.
    pub fn resolve(self) -> Mode {
        match self {
            Mode::Auto if std::io::stderr().is_terminal() => Mode::Tty,
            Mode::Auto => Mode::Plain,
            m => m,
        }
    }

    /// Reports the actions a plan ran (after the live lines, if any).
    pub fn actions<'a>(self, actions: impl Iterator<Item = &'a Action>) {
        for action in actions {
            match self.resolve() {
                Mode::Quiet => {}
                Mode::Json => eprintln!(
                    "{}",
                    serde_json::json!({"action": action.to_string(), "status": "done"})
                ),
                _ => eprintln!(" ✔ {action}"),
            }
        }
    }
}

/// The live status lines of `--progress tty`; stops (and draws a last time) on drop.
pub struct Live {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One line per service: how many of its containers run, of how many there are.
fn lines(backend: &EngineBackend, services: &[String], tick: usize) -> Vec<String> {
    const SPIN: [char; 4] = ['⠋', '⠙', '⠸', '⠴'];
    let list = super::service_containers(backend, &[]).unwrap_or_default();
    let width = services.iter().map(String::len).max().unwrap_or(0);
    services
        .iter()
        .map(|s| {
            let mine: Vec<_> = list
                .iter()
                .filter(|c| c.labels.get(crate::reconcile::translate::LABEL_SERVICE) == Some(s))
                .collect();
            let running = mine.iter().filter(|c| c.state == Status::Running).count();
            let healthy = mine
                .iter()
                .filter(|c| c.health == Some(berth_engine::container::HealthStatus::Healthy))
                .count();
            let mark = if !mine.is_empty() && running == mine.len() {
                '✔'
            } else {
                SPIN[tick % SPIN.len()]
            };
            let mut state = format!("running {running}/{}", mine.len());
            if healthy > 0 {
                state.push_str(&format!(", healthy {healthy}"));
            }
            format!(" {mark} {s:<width$}  {state}")
        })
        .collect()
}

/// Starts the live lines when the mode is `tty`.
pub fn live(mode: Mode, backend: &Arc<EngineBackend>, services: Vec<String>) -> Option<Live> {
    if mode.resolve() != Mode::Tty || services.is_empty() {
        return None;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let b = Arc::clone(backend);
    let flag = Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        let mut drawn = 0;
        for tick in 0.. {
            let last = flag.load(Ordering::Relaxed);
            let text = lines(&b, &services, tick);
            let mut err = std::io::stderr().lock();
            if drawn > 0 {
                let _ = write!(err, "\x1b[{drawn}A");
            }
            for l in &text {
                let _ = writeln!(err, "\x1b[2K{l}");
            }
            drawn = text.len();
            drop(err);
            if last {
                break;
            }
            std::thread::sleep(Duration::from_millis(120));
        }
    });
    Some(Live {
        stop,
        thread: Some(thread),
    })
}
