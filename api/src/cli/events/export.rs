//! `hub events export`: the events of a range written to a file page by
//! page (one page in memory at a time, whatever the range holds), with a
//! progress line on stderr when it is a terminal, and a summary at the end.

use std::fs::File;
use std::io::{self, IsTerminal as _, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::client::{EventQuery, HubClient, MAX_PAGE};
use super::output::{EventWriter, TableStyle};
use crate::config::{ExportArgs, ExportFormat, Format};

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Writes every event of `query` to `args.output`.
///
/// # Errors
/// The file cannot be written, or the hub fails (what was written so far
/// stays in the file, and the message says how much).
pub async fn export(
    client: &HubClient,
    query: &EventQuery,
    args: &ExportArgs,
) -> anyhow::Result<()> {
    let format = args.format.unwrap_or_else(|| format_for(&args.output));
    let path = args.output.display().to_string();
    let file = File::create(&args.output).with_context(|| format!("while creating {path}"))?;
    let mut writer = EventWriter::new(
        io::BufWriter::with_capacity(256 * 1024, file),
        Format::from(format),
        TableStyle::default(),
    );
    let progress = io::stderr().is_terminal();
    let started = Instant::now();
    let mut drawn = Instant::now();
    let mut cursor: Option<String> = None;
    loop {
        let page = match client.page(query, MAX_PAGE, cursor.as_deref()).await {
            Ok(page) => page,
            Err(err) => {
                if progress {
                    eprintln!();
                }
                let _ = writer.finish();
                return Err(err).with_context(|| {
                    format!(
                        "the export stopped after {} events ({path} holds them)",
                        writer.written()
                    )
                });
            }
        };
        writer
            .write_batch(&page.events)
            .with_context(|| format!("while writing {path}"))?;
        if progress && drawn.elapsed() >= PROGRESS_EVERY {
            drawn = Instant::now();
            let mut err = io::stderr().lock();
            let _ = write!(
                err,
                "\r\x1b[2K{}",
                progress_line(writer.written(), started.elapsed())
            );
            let _ = err.flush();
        }
        // A page may hold no event and still have a next one (it stopped
        // at its scan of the log).
        match page.next {
            Some(next) if cursor.as_ref() != Some(&next) => cursor = Some(next),
            _ => break,
        }
    }
    writer
        .finish()
        .with_context(|| format!("while writing {path}"))?;
    if progress {
        eprint!("\r\x1b[2K");
    }
    eprintln!(
        "exported {} to {path}",
        progress_line(writer.written(), started.elapsed())
    );
    Ok(())
}

/// CSV for a `*.csv` file, JSON Lines for anything else.
fn format_for(path: &Path) -> ExportFormat {
    let csv = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("csv"));
    if csv {
        ExportFormat::Csv
    } else {
        ExportFormat::Jsonl
    }
}

/// `12000 events in 1.5 s (8000 events/s)`
fn progress_line(events: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    };
    format!("{events} events in {seconds:.1} s ({rate:.0} events/s)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_follows_the_file_name_unless_given() {
        assert_eq!(format_for(Path::new("out.csv")), ExportFormat::Csv);
        assert_eq!(format_for(Path::new("OUT.CSV")), ExportFormat::Csv);
        assert_eq!(format_for(Path::new("out.jsonl")), ExportFormat::Jsonl);
        assert_eq!(format_for(Path::new("out")), ExportFormat::Jsonl);
    }

    #[test]
    fn the_progress_line_shows_count_and_rate() {
        assert_eq!(
            progress_line(12_000, Duration::from_millis(1500)),
            "12000 events in 1.5 s (8000 events/s)"
        );
        assert_eq!(
            progress_line(0, Duration::ZERO),
            "0 events in 0.0 s (0 events/s)"
        );
    }
}
