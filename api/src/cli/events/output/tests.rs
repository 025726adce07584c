use serde_json::json;

use super::*;

fn event(n: u32, correlation: Option<&str>, payload: serde_json::Value) -> Event {
    Event {
        id: format!("00000000-0000-4000-8000-{n:012}").parse().unwrap(),
        subject: format!("hub.h.audit.step{n}"),
        event_type: "IntegrationEventPublished".into(),
        aggregate_type: "IntegrationEvent".into(),
        aggregate_id: format!("agg-{n}"),
        sequence: 1,
        correlation_id: correlation.map(str::to_owned),
        causation_id: None,
        timestamp: format!("2026-11-30T14:00:0{n}Z").parse().unwrap(),
        origin: json!({"hub_id": "h", "service": "s", "user": "u"}),
        payload,
    }
}

fn written(format: Format, style: TableStyle, batches: &[Vec<Event>]) -> String {
    let mut writer = EventWriter::new(Vec::new(), format, style);
    for batch in batches {
        writer.write_batch(batch).unwrap();
    }
    writer.finish().unwrap();
    String::from_utf8(writer.out).unwrap()
}

#[test]
fn json_lines_and_a_json_array_round_trip() {
    let events = vec![
        event(1, Some("c-1"), json!({"a": 1})),
        event(2, None, json!([])),
    ];
    let lines = written(
        Format::Jsonl,
        TableStyle::default(),
        std::slice::from_ref(&events),
    );
    let read: Vec<Event> = lines
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(read, events);

    let batches = [vec![events[0].clone()], vec![], vec![events[1].clone()]];
    let array = written(Format::Json, TableStyle::default(), &batches);
    assert_eq!(serde_json::from_str::<Vec<Event>>(&array).unwrap(), events);
    assert_eq!(written(Format::Json, TableStyle::default(), &[]), "[\n]\n");
    assert_eq!(written(Format::Jsonl, TableStyle::default(), &[]), "");
}

#[test]
fn csv_quotes_what_needs_it_and_ends_lines_with_crlf() {
    assert_eq!(csv_field("plain"), "plain");
    assert_eq!(csv_field("a,b"), "\"a,b\"");
    assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    assert_eq!(csv_field("cr\r"), "\"cr\r\"");
    assert_eq!(csv_field(""), "");

    let text = written(
        Format::Csv,
        TableStyle::default(),
        &[vec![event(1, Some("c,1"), json!({"q": "\"", "n": "x\ny"}))]],
    );
    let mut lines = text.split("\r\n");
    assert_eq!(lines.next(), Some(CSV_HEADER));
    assert_eq!(
        lines.next(),
        Some(
            "00000000-0000-4000-8000-000000000001,2026-11-30T14:00:01Z,IntegrationEventPublished,\
             hub.h.audit.step1,IntegrationEvent,agg-1,1,\"c,1\",,\
             \"{\"\"hub_id\"\":\"\"h\"\",\"\"service\"\":\"\"s\"\",\"\"user\"\":\"\"u\"\"}\",\
             \"{\"\"n\"\":\"\"x\\ny\"\",\"\"q\"\":\"\"\\\"\"\"\"}\""
        )
    );
    assert_eq!(lines.next(), Some(""));
    assert_eq!(
        written(Format::Csv, TableStyle::default(), &[]),
        format!("{CSV_HEADER}\r\n"),
        "an empty export still has its header"
    );
}

#[test]
fn a_table_is_aligned_to_its_first_page() {
    let mut long = event(2, None, json!({}));
    long.subject = "hub.h.a.much.longer.subject.than.the.first".into();
    let text = written(
        Format::Table,
        TableStyle::default(),
        &[vec![event(1, Some("c-1"), json!({})), long]],
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let at = |line: &str, word: &str| line.find(word).unwrap();
    let subject_column = at(lines[0], "SUBJECT");
    assert_eq!(at(lines[1], "hub.h.audit.step1"), subject_column);
    assert_eq!(at(lines[2], "hub.h.a.much"), subject_column);
    assert_eq!(at(lines[1], "agg-1"), at(lines[0], "AGGREGATE"));
    assert_eq!(at(lines[2], "agg-2"), at(lines[0], "AGGREGATE"));
    assert!(lines[1].ends_with("c-1"), "{}", lines[1]);
    assert!(lines[2].ends_with(" -"), "no correlation id: {}", lines[2]);
    assert!(!text.contains('\x1b'), "no colour unless asked");
}

#[test]
fn a_terminal_table_truncates_long_cells_and_may_colour_them() {
    let mut long = event(1, Some(&"c".repeat(100)), json!({}));
    long.subject = format!("hub.h.{}", "s".repeat(200));
    let style = TableStyle {
        truncate: true,
        color: false,
    };
    let text = written(Format::Table, style, &[vec![long.clone()]]);
    let row = text.lines().nth(1).unwrap();
    assert!(
        row.contains(&format!("hub.h.{}…", "s".repeat(MAX_WIDTHS[2] - 7))),
        "{row}"
    );
    assert!(
        row.ends_with(&format!("{}…", "c".repeat(MAX_WIDTHS[4] - 1))),
        "{row}"
    );

    let coloured = written(
        Format::Table,
        TableStyle {
            truncate: true,
            color: true,
        },
        &[vec![long]],
    );
    assert!(coloured.contains("\x1b[1mTIME\x1b[0m"), "{coloured:?}");
    assert!(
        coloured.contains("\x1b[1mIntegrationEventPublished\x1b[0m"),
        "{coloured:?}"
    );
}

#[test]
fn terminal_escapes_in_stored_text_are_not_printed() {
    let mut hostile = event(1, Some("c\x1b[2J"), json!({}));
    hostile.event_type = "Evil\x1b]0;title\x07".into();
    let text = written(Format::Table, TableStyle::default(), &[vec![hostile]]);
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
}

#[test]
fn preset_widths_keep_one_at_a_time_rows_aligned() {
    let mut writer =
        EventWriter::new(Vec::new(), Format::Table, TableStyle::default()).with_full_widths();
    writer.write_batch(&[event(1, None, json!({}))]).unwrap();
    let mut long = event(2, None, json!({}));
    long.subject = "hub.h.a.longer.subject.than.before".into();
    writer.write_batch(&[long]).unwrap();
    writer.finish().unwrap();
    assert_eq!(writer.written(), 2);
    let text = String::from_utf8(writer.out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let column = lines[0].find("AGGREGATE").unwrap();
    assert_eq!(lines[1].find("agg-1"), Some(column));
    assert_eq!(lines[2].find("agg-2"), Some(column));
}
