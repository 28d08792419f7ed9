//! Showing progress on stderr: a bar on a terminal, one line per event elsewhere.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Where progress goes.
pub enum Progress {
    /// A progress bar (stderr is a terminal).
    Bar(ProgressBar),
    /// Plain lines on stderr.
    Lines,
}

impl Progress {
    /// A bar on a terminal, lines otherwise.
    pub fn for_inputs(total: usize) -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress::Lines;
        }
        let bar = ProgressBar::new(total as u64);
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress::Bar(bar)
    }

    /// Reports a noteworthy event (created, failed, done).
    pub fn event(&self, line: String) {
        match self {
            Progress::Bar(bar) => bar.println(line),
            Progress::Lines => eprintln!("{line}"),
        }
    }

    /// Updates the bar's message (no line output).
    pub fn status(&self, message: String) {
        if let Progress::Bar(bar) = self {
            bar.set_message(message);
        }
    }

    /// One input is finished.
    pub fn advance(&self) {
        if let Progress::Bar(bar) = self {
            bar.inc(1);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
