//! Progress bars on stderr: shown only when stderr is a terminal and `--quiet` is not given,
//! so pipelines and logs get clean output.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// Makes progress bars, or hidden ones.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    visible: bool,
}

impl Progress {
    /// Visible unless `quiet`, and only on a terminal.
    pub fn new(quiet: bool) -> Self {
        Progress {
            visible: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// Never shows anything.
    pub fn hidden() -> Self {
        Progress { visible: false }
    }

    /// True when bars are drawn.
    pub fn is_visible(&self) -> bool {
        self.visible
    }

    /// A bar over `total` bytes, showing throughput and a row counter in the message.
    pub fn bytes(&self, total: u64, prefix: &str) -> ProgressBar {
        self.bar(
            total,
            prefix,
            "{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} ({eta})",
        )
    }

    /// A bar over `total` items; callers put the rate in the message with [`rate_message`].
    pub fn items(&self, total: u64, prefix: &str) -> ProgressBar {
        self.bar(
            total,
            prefix,
            "{prefix:>9} [{bar:30}] {human_pos}/{human_len} {msg} ({eta})",
        )
    }

    fn bar(&self, total: u64, prefix: &str, template: &str) -> ProgressBar {
        if !self.visible {
            return ProgressBar::hidden();
        }
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        ProgressBar::new(total)
            .with_style(style)
            .with_prefix(prefix.to_string())
    }
}

/// `123456 rows/s` for a bar's message: `done` items since `started`.
pub fn rate_message(done: u64, started: std::time::Instant, unit: &str) -> String {
    let seconds = started.elapsed().as_secs_f64().max(1e-3);
    format!("{:.0} {unit}/s", done as f64 / seconds)
}
