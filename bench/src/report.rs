//! The tables `hub-bench` prints.

use crate::commands::CommandsResult;
use crate::publish::PublishResult;
use crate::queries::QueriesResult;
use crate::stats::Summary;

/// `12.34` for a figure, `-` where there is none.
fn ms(summary: Option<&Summary>, pick: fn(&Summary) -> f64) -> String {
    summary.map_or("-".to_owned(), |s| format!("{:.2}", pick(s)))
}

/// The `commands` (and `framework`) table.
pub fn commands(results: &[CommandsResult]) {
    println!("scenario commands (throughput in ops/s, latency in ms; fw = plain cqrs-es)");
    println!(
        "{:>5} {:<10} {:>9} {:>7} {:>7} {:>7} {:>6} {:>9} {:>7} {:>7} {:>8} {:>7} {:>7} {:>7}",
        "conc",
        "op",
        "api ops/s",
        "p50",
        "p95",
        "p99",
        "errors",
        "raw ops/s",
        "raw p99",
        "api/raw",
        "fw ops/s",
        "fw p50",
        "fw p99",
        "api/fw"
    );
    for r in results {
        let framework = r.create_framework.as_ref();
        let mut rows = vec![(
            "create",
            &r.create_api,
            &r.create_raw,
            r.create_ratio,
            framework,
            r.create_framework_ratio,
        )];
        if let Some(cycles) = &r.cycles {
            rows.push((
                "start/stop",
                &cycles.api,
                &cycles.raw,
                cycles.ratio,
                None,
                None,
            ));
        }
        for (op, api, raw, ratio, framework, framework_ratio) in rows {
            println!(
                "{:>5} {:<10} {:>9.0} {:>7.2} {:>7.2} {:>7.2} {:>6} {:>9.0} {:>7.2} {:>6.0}% {:>8} {:>7} {:>7} {:>7}",
                r.concurrency,
                op,
                api.throughput,
                api.p50_ms,
                api.p95_ms,
                api.p99_ms,
                api.errors,
                raw.throughput,
                raw.p99_ms,
                ratio * 100.0,
                framework.map_or("-".to_owned(), |f| format!("{:.0}", f.throughput)),
                ms(framework, |f| f.p50_ms),
                ms(framework, |f| f.p99_ms),
                framework_ratio.map_or("-".to_owned(), |x| format!("{x:.2}")),
            );
        }
        let sizes: Vec<String> = r
            .create_batch_sizes
            .iter()
            .map(|(consumer, size)| format!("{consumer} {size:.1}"))
            .collect();
        if !sizes.is_empty() {
            println!(
                "      events per feed batch during creates: {}",
                sizes.join(", ")
            );
        }
    }
}

/// The `publish` table.
pub fn publish(results: &[PublishResult]) {
    println!("scenario publish: POST /api/events (throughput in events/s, latency in ms)");
    println!(
        "{:>5} {:>9} {:>7} {:>7} {:>7} {:>6} {:>9} {:>7} {:>7} {:>7} {:>7}",
        "conc",
        "api ev/s",
        "p50",
        "p95",
        "p99",
        "errors",
        "raw ev/s",
        "raw p50",
        "raw p95",
        "raw p99",
        "api/raw"
    );
    for r in results {
        println!(
            "{:>5} {:>9.0} {:>7.2} {:>7.2} {:>7.2} {:>6} {:>9.0} {:>7.2} {:>7.2} {:>7.2} {:>7.2}",
            r.concurrency,
            r.api.throughput,
            r.api.p50_ms,
            r.api.p95_ms,
            r.api.p99_ms,
            r.api.errors,
            r.raw.throughput,
            r.raw.p50_ms,
            r.raw.p95_ms,
            r.raw.p99_ms,
            r.ratio
        );
    }
}

/// The `queries` table.
pub fn queries(result: &QueriesResult) {
    println!(
        "scenario queries: {} events (seeded in {:.1} s, event_log rebuilt in {:.1} s); \
         p50/p99 ms of 100-event pages",
        result.events, result.seed_seconds, result.rebuild_seconds
    );
    println!(
        "{:<14} {:<18} {:>15} {:>15} {:>15} {:>15} {:>6}",
        "phase", "filter", "REST first", "REST deep", "GraphQL first", "GraphQL 2nd", "errors"
    );
    let pair = |s: &Summary| format!("{:.1}/{:.1}", s.p50_ms, s.p99_ms);
    for row in &result.rows {
        let all = [
            &row.rest_first,
            &row.rest_deep,
            &row.graphql_first,
            &row.graphql_second,
        ];
        println!(
            "{:<14} {:<18} {:>15} {:>15} {:>15} {:>15} {:>6}",
            row.phase,
            row.filter,
            pair(all[0]),
            format!("{} ({})", pair(all[1]), row.deep_events),
            pair(all[2]),
            format!("{} ({})", pair(all[3]), row.second_events),
            all.iter().map(|s| s.errors).sum::<usize>()
        );
    }
    println!("  (n) = events on that page");
}

/// The hub's peak memory line.
pub fn rss(peak_rss: Option<f64>) {
    println!(
        "  hub peak RSS: {}",
        peak_rss.map_or("unknown".to_owned(), |m| format!("{m:.1} MiB"))
    );
}
