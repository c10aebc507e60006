//! Bulk load: `start-bulk-load` (optionally waiting) and the report printing of
//! `bulk-load-status`.

use super::prelude::*;

pub(crate) fn print_report(report: &BulkLoadReport, json: bool) -> Res<()> {
    if json {
        return print_json(report);
    }
    print!("{}", report.to_text());
    Ok(())
}

/// Exit status of a finished load: failure unless it succeeded.
pub(crate) fn finished(report: &BulkLoadReport) -> Res<()> {
    if report.status == BulkLoadStatus::Succeed {
        return Ok(());
    }
    Err(format!(
        "bulk load of table {} ended {}: {}",
        report.table,
        report.status,
        report.error.as_deref().unwrap_or("no reason reported")
    ))
}

pub(crate) async fn start_bulk_load(
    client: &Client,
    table: &str,
    dir: &std::path::Path,
    wait: Option<Duration>,
    json: bool,
) -> Res<()> {
    let dir = std::path::absolute(dir).map_err(|e| format!("--dir {}: {e}", dir.display()))?;
    let dir_text = dir
        .to_str()
        .ok_or_else(|| format!("--dir {} is not UTF-8", dir.display()))?;
    let mut report = client
        .start_bulk_load(table, dir_text)
        .await
        .map_err(|e| e.to_string())?;
    let Some(wait) = wait else {
        print_report(&report, json)?;
        return if report.is_finished() {
            finished(&report)
        } else {
            Ok(())
        };
    };
    let deadline = std::time::Instant::now() + wait;
    while !report.is_finished() {
        if std::time::Instant::now() >= deadline {
            print_report(&report, json)?;
            return Err(format!(
                "bulk load of table {table} not finished within {wait:?} (still {}); it goes \
                 on: check bulk-load-status",
                report.status
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        report = client
            .query_bulk_load(table)
            .await
            .map_err(|e| e.to_string())?;
    }
    print_report(&report, json)?;
    finished(&report)
}
