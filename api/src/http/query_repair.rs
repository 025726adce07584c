//! Query strings as clients send them: `"`, `<` and `>` sent raw in a
//! request's query (`curl 'http://127.0.0.1:9001/api/events?subject=hub.>'`,
//! Python's `websockets`) are percent-encoded on the wire, before hyper
//! parses the request line. (The `http` crate's URI parser refuses them, so
//! hyper would answer an empty 400 before any handler runs; browsers and
//! most libraries encode them anyway, and `%3E` decodes to the same `>`.)
//!
//! [`QueryRepair`] follows the connection's HTTP/1.1 framing to know which
//! bytes are request lines: it counts `Content-Length` bodies and, at the
//! first thing it does not follow exactly (a chunked body, an upgrade to a
//! WebSocket, a malformed or repeated length, an overlong header line), it
//! stops touching the connection for good. Only bytes of a request target
//! after its `?` are ever changed; everything else passes as it came.

/// Longest header line followed; a longer one ends the repair (hyper
/// refuses such headers anyway).
const MAX_HEADER_LINE: usize = 8 * 1024;

/// Where in the connection's byte stream the repair is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// In a request line (or the empty lines allowed before one).
    RequestLine {
        /// Spaces seen in the line: 0 in the method, 1 in the target.
        spaces: u8,
        /// Whether the target's `?` has been seen.
        in_query: bool,
        /// Whether any byte of the line has been seen.
        started: bool,
    },
    /// In the header block.
    Headers,
    /// In a body of this many bytes still to come.
    Body(u64),
    /// Not following this connection any more.
    PassThrough,
}

/// Percent-encodes `"`, `<` and `>` in the query of every request line of
/// one connection (see the module docs).
#[derive(Debug)]
pub struct QueryRepair {
    state: State,
    /// The header line being read.
    line: Vec<u8>,
    /// The request's `Content-Length`, once seen.
    content_length: Option<u64>,
    /// Whether the request's framing is one the repair does not follow.
    unfollowed: bool,
}

impl Default for QueryRepair {
    fn default() -> Self {
        Self {
            state: Self::request_line(),
            line: Vec::new(),
            content_length: None,
            unfollowed: false,
        }
    }
}

impl QueryRepair {
    fn request_line() -> State {
        State::RequestLine {
            spaces: 0,
            in_query: false,
            started: false,
        }
    }

    /// Whether the repair has stopped following the connection: every later
    /// byte passes unchanged.
    pub fn is_pass_through(&self) -> bool {
        self.state == State::PassThrough
    }

    /// Appends `input`, repaired, to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut rest = input;
        while let Some((&byte, tail)) = rest.split_first() {
            match &mut self.state {
                State::PassThrough => {
                    out.extend_from_slice(rest);
                    return;
                }
                State::Body(remaining) => {
                    let take = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(rest.len());
                    out.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        self.state = Self::request_line();
                    }
                    continue;
                }
                State::RequestLine {
                    spaces,
                    in_query,
                    started,
                } => match byte {
                    b'\r' | b'\n' if !*started => out.push(byte),
                    b'\n' => {
                        out.push(byte);
                        self.state = State::Headers;
                    }
                    b' ' => {
                        *started = true;
                        *spaces = spaces.saturating_add(1);
                        out.push(byte);
                    }
                    b'?' if *spaces == 1 => {
                        *started = true;
                        *in_query = true;
                        out.push(byte);
                    }
                    b'"' | b'<' | b'>' if *spaces == 1 && *in_query => {
                        out.extend_from_slice(match byte {
                            b'"' => b"%22",
                            b'<' => b"%3C",
                            _ => b"%3E",
                        });
                    }
                    _ => {
                        *started = true;
                        out.push(byte);
                    }
                },
                State::Headers => {
                    out.push(byte);
                    if byte == b'\n' {
                        self.end_header_line();
                    } else if self.line.len() < MAX_HEADER_LINE {
                        self.line.push(byte);
                    } else {
                        self.state = State::PassThrough;
                    }
                }
            }
            rest = tail;
        }
    }

    /// Handles the header line just ended.
    fn end_header_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.is_empty() {
            self.state = match (self.unfollowed, self.content_length.take()) {
                (true, _) => State::PassThrough,
                (false, Some(length)) if length > 0 => State::Body(length),
                (false, _) => Self::request_line(),
            };
            return;
        }
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            // An obsolete folded header: not followed.
            self.unfollowed = true;
            return;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            self.unfollowed = true;
            return;
        };
        let name = &line[..colon];
        let value = String::from_utf8_lossy(&line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-length") {
            match (value.trim().parse::<u64>(), self.content_length) {
                (Ok(length), None) => self.content_length = Some(length),
                (Ok(length), Some(seen)) if length == seen => {}
                _ => self.unfollowed = true,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"upgrade")
        {
            self.unfollowed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Repairs `input` fed in pieces of `step` bytes.
    fn repaired(input: &[u8], step: usize) -> (Vec<u8>, bool) {
        let mut repair = QueryRepair::default();
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            repair.push(piece, &mut out);
        }
        (out, repair.is_pass_through())
    }

    /// `repaired`, checked to be the same for every way of cutting `input`.
    fn repaired_any_way(input: &[u8]) -> (Vec<u8>, bool) {
        let whole = repaired(input, input.len().max(1));
        for step in 1..input.len().min(64) {
            assert_eq!(repaired(input, step), whole, "in pieces of {step}");
        }
        whole
    }

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    #[test]
    fn raw_quotes_and_angle_brackets_in_a_query_are_encoded() {
        let (out, _) = repaired_any_way(
            b"GET /api/events?subject=hub.>&x=\"<a>\" HTTP/1.1\r\nHost: h\r\nX-Note: a>b\r\n\r\n",
        );
        assert_eq!(
            text(&out),
            "GET /api/events?subject=hub.%3E&x=%22%3Ca%3E%22 HTTP/1.1\r\nHost: h\r\nX-Note: a>b\r\n\r\n"
        );
    }

    #[test]
    fn only_the_query_of_the_target_is_touched() {
        let (out, _) = repaired_any_way(b"GET /a<b>?q=> HTTP/1.1>\r\n\r\n");
        assert_eq!(text(&out), "GET /a<b>?q=%3E HTTP/1.1>\r\n\r\n");
    }

    #[test]
    fn a_body_of_a_known_length_passes_unchanged_and_the_next_request_is_repaired() {
        let input = b"\r\nPOST /api/events?a=> HTTP/1.1\r\ncontent-length: 14\r\n\r\n{\"a\":\"<>?\"} \r\nGET /x?s=hub.> HTTP/1.1\r\n\r\n";
        let (out, pass_through) = repaired_any_way(input);
        assert_eq!(
            text(&out),
            "\r\nPOST /api/events?a=%3E HTTP/1.1\r\ncontent-length: 14\r\n\r\n{\"a\":\"<>?\"} \r\nGET /x?s=hub.%3E HTTP/1.1\r\n\r\n"
        );
        assert!(!pass_through);
    }

    #[test]
    fn framing_it_does_not_follow_ends_the_repair_for_the_connection() {
        let cases: &[&[u8]] = &[
            b"POST /a?x=> HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n<>?\r\n0\r\n\r\nGET /b?x=> HTTP/1.1\r\n\r\n",
            b"GET /ws?x=> HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n<>?raw frames",
            b"POST /a?x=> HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n<>?",
            b"POST /a?x=> HTTP/1.1\r\nContent-Length: x\r\n\r\n<>?",
            b"GET /a?x=> HTTP/1.1\r\nX: a\r\n folded\r\n\r\nGET /b?x=> HTTP/1.1\r\n\r\n",
            b"GET /a?x=> HTTP/1.1\r\nno colon\r\n\r\nGET /b?x=> HTTP/1.1\r\n\r\n",
        ];
        for input in cases {
            let (out, pass_through) = repaired_any_way(input);
            let text = text(&out);
            assert!(pass_through, "{text}");
            let request_line_end = text.find('\n').unwrap();
            assert!(text[..request_line_end].contains("?x=%3E "), "{text}");
            let after = &text[request_line_end..];
            let original = std::str::from_utf8(input).unwrap();
            assert_eq!(
                after,
                &original[original.find('\n').unwrap()..],
                "everything after the first request line is unchanged"
            );
        }
    }

    #[test]
    fn an_overlong_header_line_ends_the_repair() {
        let mut input = b"GET /a HTTP/1.1\r\nX: ".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_HEADER_LINE + 10));
        input.extend_from_slice(b"\r\n\r\nGET /b?x=> HTTP/1.1\r\n\r\n");
        let (out, pass_through) = repaired(&input, 1000);
        assert!(pass_through);
        assert_eq!(out, input);
    }
}
