//! Reading a Server-Sent Events body as it arrives: lines ended by CRLF,
//! LF or CR (also split across chunks), `id`, `event` and `data` fields,
//! comments ignored, as the WHATWG `EventSource` reads them.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The last `id:` seen so far in the stream (it carries over).
    pub id: Option<String>,
    /// The `event:` field (`message` when absent).
    pub event: Option<String>,
    /// The `data:` lines joined with line breaks.
    pub data: String,
}

/// The stream sent a line longer than a reader should hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event stream sent a line longer than {0} bytes")]
pub struct LineTooLong(pub usize);

/// An incremental reader: feed it chunks, take the events out.
#[derive(Debug)]
pub struct SseReader {
    line: Vec<u8>,
    /// The previous chunk ended with CR: an LF starting this one belongs
    /// to it.
    after_cr: bool,
    max_line: usize,
    last_id: Option<String>,
    event: Option<String>,
    data: String,
    has_data: bool,
    started: bool,
}

impl SseReader {
    /// A reader that refuses lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Self {
            line: Vec::new(),
            after_cr: false,
            max_line,
            last_id: None,
            event: None,
            data: String::new(),
            has_data: false,
            started: false,
        }
    }

    /// The last event id seen.
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Reads `chunk`, appending the events it completes to `out`.
    ///
    /// # Errors
    /// A line longer than the limit.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), LineTooLong> {
        let mut rest = chunk;
        if self.after_cr {
            self.after_cr = false;
            if let Some(tail) = rest.strip_prefix(b"\n") {
                rest = tail;
            }
        }
        while let Some(end) = rest.iter().position(|b| *b == b'\n' || *b == b'\r') {
            self.push(&rest[..end])?;
            let is_cr = rest[end] == b'\r';
            rest = &rest[end + 1..];
            if is_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out);
        }
        self.push(rest)
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), LineTooLong> {
        if self.line.len() + bytes.len() > self.max_line {
            return Err(LineTooLong(self.max_line));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        let mut line = String::from_utf8_lossy(line);
        if !self.started {
            self.started = true;
            if let Some(rest) = line.strip_prefix('\u{feff}') {
                line = rest.to_owned().into();
            }
        }
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        out.push(SseEvent {
            id: self.last_id.clone(),
            event,
            data: std::mem::take(&mut self.data),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_in(chunks: &[&[u8]]) -> (Vec<SseEvent>, SseReader) {
        let mut reader = SseReader::new(1024);
        let mut out = Vec::new();
        for chunk in chunks {
            reader.feed(chunk, &mut out).unwrap();
        }
        (out, reader)
    }

    fn event(id: Option<&str>, event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            id: id.map(str::to_owned),
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn events_have_an_id_a_type_and_data() {
        let (events, reader) = read_in(&[
            b": keepalive\n\nid: 41\nevent: ProjectCreated\ndata: {\"a\":1}\n\nid: 42\ndata:x\n\n",
        ]);
        assert_eq!(
            events,
            [
                event(Some("41"), Some("ProjectCreated"), "{\"a\":1}"),
                event(Some("42"), None, "x"),
            ]
        );
        assert_eq!(reader.last_id(), Some("42"));
    }

    #[test]
    fn every_line_ending_works_even_split_across_chunks() {
        let whole: &[u8] = b"id: 1\r\ndata: a\r\n\r\nid: 2\rdata: b\r\rid: 3\ndata: c\n\n";
        let expected = [
            event(Some("1"), None, "a"),
            event(Some("2"), None, "b"),
            event(Some("3"), None, "c"),
        ];
        for split in 0..=whole.len() {
            let (events, _) = read_in(&[&whole[..split], &whole[split..]]);
            assert_eq!(events, expected, "split at {split}");
        }
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(read_in(&bytes).0, expected, "one byte at a time");
    }

    #[test]
    fn data_lines_join_and_an_unfinished_event_waits() {
        let (events, _) = read_in(&[b"data: one\ndata\ndata:  two\n\ndata: half\n"]);
        assert_eq!(events, [event(None, None, "one\n\n two")]);
        let (events, _) = read_in(&[b"\xef\xbb\xbfdata: bom\n\n", b"event: x\n\n"]);
        assert_eq!(events, [event(None, None, "bom")], "no data, no event");
    }

    #[test]
    fn the_id_carries_over_and_a_nul_id_is_ignored() {
        let (events, reader) = read_in(&[b"id: 7\ndata: a\n\ndata: b\n\nid: 8\0\ndata: c\n\n"]);
        assert_eq!(
            events,
            [
                event(Some("7"), None, "a"),
                event(Some("7"), None, "b"),
                event(Some("7"), None, "c"),
            ]
        );
        assert_eq!(reader.last_id(), Some("7"));
    }

    #[test]
    fn a_line_over_the_limit_is_refused() {
        let mut reader = SseReader::new(8);
        let mut out = Vec::new();
        assert!(reader.feed(b"data: 12\n", &mut out).is_ok());
        assert_eq!(reader.feed(b"data: 123", &mut out), Err(LineTooLong(8)));
        let mut reader = SseReader::new(8);
        reader.feed(b"data:", &mut out).unwrap();
        assert!(reader.feed(b" 12345", &mut out).is_err(), "across chunks");
    }
}
