//! What the operator watches while a run goes: a counting bar for setup
//! and a bar over the measured phase's duration with the live rate. Drawn
//! on stderr (and not at all when it is not a terminal), so stdout carries
//! only the summary and the JSON line.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Redraws per second of the spinner; the figures change on `show`.
const TICK: Duration = Duration::from_millis(100);

/// The bar of a measured phase; clones draw the same bar.
#[derive(Debug, Clone)]
pub struct PhaseProgress {
    bar: ProgressBar,
    started: Instant,
}

/// Live figures the bar shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveFigures {
    /// Orders accepted so far.
    pub accepted: u64,
    /// Orders cancelled so far.
    pub cancels: u64,
    /// Errors so far.
    pub errors: u64,
}

/// A bar counting `length` setup steps, labelled `message`.
pub fn counting(length: u64, message: &str, visible: bool) -> ProgressBar {
    let bar = new_bar(length, visible);
    if let Ok(style) = ProgressStyle::with_template("{msg:<24} [{bar:30}] {pos}/{len} {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_owned());
    bar
}

impl PhaseProgress {
    /// A bar that fills over `duration`.
    pub fn over(duration: Duration, visible: bool) -> Self {
        let length = u64::try_from(duration.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let bar = new_bar(length, visible);
        if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:30}] {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(TICK);
        Self {
            bar,
            started: Instant::now(),
        }
    }

    /// Moves the bar to the time elapsed and shows `figures` with the
    /// accepted-order rate so far.
    pub fn show(&self, figures: LiveFigures) {
        let seconds = self.started.elapsed().as_secs_f64().max(f64::EPSILON);
        self.show_message(format!(
            "{} orders ({:.0}/s), {} cancels, {} errors",
            figures.accepted,
            figures.accepted as f64 / seconds,
            figures.cancels,
            figures.errors
        ));
    }

    /// Moves the bar to the time elapsed and shows `message` beside it.
    pub fn show_message(&self, message: String) {
        let elapsed = self.started.elapsed();
        self.bar
            .set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
        self.bar.set_message(message);
    }

    /// Time since the bar started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Removes the bar, leaving the terminal to the summary.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}

fn new_bar(length: u64, visible: bool) -> ProgressBar {
    let target = if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    ProgressBar::with_draw_target(Some(length), target)
}
