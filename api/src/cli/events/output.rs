//! Printing events as they come, in bounded memory: an aligned table,
//! one JSON array, JSON Lines, or RFC 4180 CSV.

use std::io::{self, Write};

use chrono::{Local, SecondsFormat};

use super::client::Event;
use crate::config::Format;

/// The table's columns.
const HEADERS: [&str; 5] = ["TIME", "TYPE", "SUBJECT", "AGGREGATE", "CORRELATION ID"];
/// The widest a column gets when cells are truncated (on a terminal).
const MAX_WIDTHS: [usize; 5] = [29, 28, 48, 36, 36];
/// The CSV columns, in order.
const CSV_HEADER: &str = "id,timestamp,event_type,subject,aggregate_type,aggregate_id,sequence,correlation_id,causation_id,origin,payload";

/// ANSI styles per table column (time dim, type bold, subject plain,
/// aggregate dim, correlation id yellow).
const STYLES: [&str; 5] = ["\x1b[2m", "\x1b[1m", "", "\x1b[2m", "\x1b[33m"];
const RESET: &str = "\x1b[0m";

/// How a table looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableStyle {
    /// Cut cells to [`MAX_WIDTHS`] (on a terminal).
    pub truncate: bool,
    /// ANSI colours.
    pub color: bool,
}

/// Writes events in one format to `out`.
#[derive(Debug)]
pub struct EventWriter<W: Write> {
    out: W,
    format: Format,
    style: TableStyle,
    /// Column widths, fixed by the first batch.
    widths: Option<[usize; 5]>,
    /// The opening (`[`, the header row) is written.
    started: bool,
    written: u64,
}

impl<W: Write> EventWriter<W> {
    /// A writer of `format` to `out`; `style` only matters for tables.
    pub fn new(out: W, format: Format, style: TableStyle) -> Self {
        Self {
            out,
            format,
            style,
            widths: None,
            started: false,
            written: 0,
        }
    }

    /// A table whose columns are as wide as they may get, for events that
    /// come one at a time.
    pub fn with_full_widths(mut self) -> Self {
        self.widths = Some(MAX_WIDTHS);
        self
    }

    /// Events written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes `events` (a page, or one live event) and flushes.
    ///
    /// # Errors
    /// When writing fails.
    pub fn write_batch(&mut self, events: &[Event]) -> io::Result<()> {
        if !self.started {
            self.start(events)?;
        }
        for event in events {
            match self.format {
                Format::Table => self.table_row(event)?,
                Format::Json => {
                    let separator = if self.written == 0 { "" } else { ",\n" };
                    write!(self.out, "{separator}")?;
                    serde_json::to_writer(&mut self.out, event)?;
                }
                Format::Jsonl => {
                    serde_json::to_writer(&mut self.out, event)?;
                    self.out.write_all(b"\n")?;
                }
                Format::Csv => self.csv_row(event)?,
            }
            self.written += 1;
        }
        self.out.flush()
    }

    /// Ends the output (closes a JSON array; writes the header of an empty
    /// CSV or table) and flushes.
    ///
    /// # Errors
    /// When writing fails.
    pub fn finish(&mut self) -> io::Result<()> {
        if !self.started {
            self.start(&[])?;
        }
        if self.format == Format::Json {
            let close = if self.written == 0 { "]\n" } else { "\n]\n" };
            self.out.write_all(close.as_bytes())?;
        }
        self.out.flush()
    }

    /// What comes before the first event; a table's widths fit `first`
    /// unless they are preset.
    fn start(&mut self, first: &[Event]) -> io::Result<()> {
        self.started = true;
        match self.format {
            Format::Json => self.out.write_all(b"[\n"),
            Format::Csv => write!(self.out, "{CSV_HEADER}\r\n"),
            Format::Table => {
                let widths = *self.widths.get_or_insert_with(|| fit(first, self.style));
                let header = line(HEADERS.map(str::to_owned), widths, self.style, true);
                writeln!(self.out, "{header}")
            }
            Format::Jsonl => Ok(()),
        }
    }

    fn table_row(&mut self, event: &Event) -> io::Result<()> {
        let widths = self.widths.unwrap_or(MAX_WIDTHS);
        let row = line(cells(event), widths, self.style, false);
        writeln!(self.out, "{row}")
    }

    fn csv_row(&mut self, event: &Event) -> io::Result<()> {
        let json = |value: &serde_json::Value| value.to_string();
        let fields = [
            event.id.to_string(),
            super::client::rfc3339(event.timestamp),
            event.event_type.clone(),
            event.subject.clone(),
            event.aggregate_type.clone(),
            event.aggregate_id.clone(),
            event.sequence.to_string(),
            event.correlation_id.clone().unwrap_or_default(),
            event.causation_id.clone().unwrap_or_default(),
            json(&event.origin),
            json(&event.payload),
        ];
        let row: Vec<String> = fields.iter().map(|field| csv_field(field)).collect();
        write!(self.out, "{}\r\n", row.join(","))
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
pub fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// The table cells of `event`: local time, type, subject, aggregate id,
/// correlation id.
fn cells(event: &Event) -> [String; 5] {
    [
        event
            .timestamp
            .with_timezone(&Local)
            .to_rfc3339_opts(SecondsFormat::Millis, true),
        event.event_type.clone(),
        event.subject.clone(),
        event.aggregate_id.clone(),
        event.correlation_id.clone().unwrap_or_else(|| "-".into()),
    ]
}

/// Column widths for `events`: as wide as the widest cell (and header),
/// capped when cells are truncated.
fn fit(events: &[Event], style: TableStyle) -> [usize; 5] {
    let mut widths = HEADERS.map(|h| h.chars().count());
    for event in events {
        for (width, cell) in widths.iter_mut().zip(cells(event)) {
            *width = (*width).max(cell.chars().count());
        }
    }
    if style.truncate {
        for (width, max) in widths.iter_mut().zip(MAX_WIDTHS) {
            *width = (*width).min(max);
        }
    }
    widths
}

/// One table line: cells padded to `widths` (cut with `…` when truncating),
/// two spaces apart, the last one not padded.
fn line(cells: [String; 5], widths: [usize; 5], style: TableStyle, header: bool) -> String {
    let mut out = String::new();
    for (i, (cell, width)) in cells.into_iter().zip(widths).enumerate() {
        // Stored text is not trusted to be free of terminal escapes.
        let mut cell: String = cell
            .chars()
            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
            .collect();
        let length = cell.chars().count();
        if style.truncate && length > width {
            cell = cell.chars().take(width.saturating_sub(1)).collect();
            cell.push('…');
        }
        let last = i == HEADERS.len() - 1;
        let padding = if last {
            0
        } else {
            width.saturating_sub(cell.chars().count())
        };
        let styled = match (style.color, header) {
            (false, _) => cell,
            (true, true) => format!("\x1b[1m{cell}{RESET}"),
            (true, false) if STYLES[i].is_empty() => cell,
            (true, false) => format!("{}{cell}{RESET}", STYLES[i]),
        };
        out.push_str(&styled);
        if !last {
            out.push_str(&" ".repeat(padding + 2));
        }
    }
    out
}

#[cfg(test)]
mod tests;
