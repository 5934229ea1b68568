//! Events, in both their core/v1 and events.k8s.io/v1 shapes.

use jiff::Timestamp;
use serde_json::Value;

use crate::duration::{parse_time, since};
use crate::fields::{int_at, name, opt_int, opt_str, str_at};
use crate::table::{Column, NAME, Printer, cells, col, wide};

const COLUMNS: &[Column] = &[
    col("Last Seen", "string", "Time since the event was last observed."),
    col("Type", "string", "Normal or Warning."),
    col("Reason", "string", "Short machine-readable reason."),
    col("Object", "string", "Object the event is about, as kind/name."),
    wide("Subobject", "string", "Part of the object the event is about (fieldPath)."),
    wide("Source", "string", "Component (and host) that reported the event."),
    col("Message", "string", "Human-readable description."),
    wide("First Seen", "string", "Time since the event was first observed."),
    wide("Count", "string", "How many times the event occurred."),
    Column { priority: 1, ..NAME },
];

pub(crate) static CORE_EVENT: Printer = Printer { columns: COLUMNS, cells: core_event_cells };
pub(crate) static EVENTS_V1_EVENT: Printer = Printer { columns: COLUMNS, cells: events_v1_cells };

/// The fields the table needs, whichever API version the event was served in.
struct EventView<'a> {
    first: Option<&'a str>,
    last: Option<&'a str>,
    event_time: Option<&'a str>,
    count: i64,
    series: Option<&'a Value>,
    regarding: &'a Value,
    source: &'a Value,
    reporting_controller: &'a str,
    reporting_instance: &'a str,
    ty: &'a str,
    reason: &'a str,
    message: &'a str,
    name: &'a str,
}

fn core_event_cells(ev: &Value, now: Timestamp) -> Vec<Value> {
    event_cells(
        &EventView {
            first: opt_str(ev, "/firstTimestamp"),
            last: opt_str(ev, "/lastTimestamp"),
            event_time: opt_str(ev, "/eventTime"),
            count: int_at(ev, "/count"),
            series: ev.get("series"),
            regarding: ev.get("involvedObject").unwrap_or(&Value::Null),
            source: ev.get("source").unwrap_or(&Value::Null),
            reporting_controller: str_at(ev, "/reportingComponent"),
            reporting_instance: str_at(ev, "/reportingInstance"),
            ty: str_at(ev, "/type"),
            reason: str_at(ev, "/reason"),
            message: str_at(ev, "/message"),
            name: name(ev),
        },
        now,
    )
}

fn events_v1_cells(ev: &Value, now: Timestamp) -> Vec<Value> {
    event_cells(
        &EventView {
            first: opt_str(ev, "/deprecatedFirstTimestamp"),
            last: opt_str(ev, "/deprecatedLastTimestamp"),
            event_time: opt_str(ev, "/eventTime"),
            count: int_at(ev, "/deprecatedCount"),
            series: ev.get("series"),
            regarding: ev.get("regarding").unwrap_or(&Value::Null),
            source: ev.get("deprecatedSource").unwrap_or(&Value::Null),
            reporting_controller: str_at(ev, "/reportingController"),
            reporting_instance: str_at(ev, "/reportingInstance"),
            ty: str_at(ev, "/type"),
            reason: str_at(ev, "/reason"),
            message: str_at(ev, "/note"),
            name: name(ev),
        },
        now,
    )
}

fn non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() { b } else { a }
}

fn event_cells(ev: &EventView<'_>, now: Timestamp) -> Vec<Value> {
    // Events from the newer API carry only eventTime; fall back to it.
    let first = if parse_time(ev.first).is_some() { since(ev.first, now) } else { since(ev.event_time, now) };
    let mut last = if parse_time(ev.last).is_some() { since(ev.last, now) } else { first.clone() };
    let mut count = ev.count;
    match ev.series.filter(|s| s.is_object()) {
        Some(series) => {
            last = since(opt_str(series, "/lastObservedTime"), now);
            count = opt_int(series, "/count").unwrap_or(0);
        }
        // Singleton events of the newer API leave the count unset.
        None if count == 0 => count = 1,
        None => {}
    }
    let kind = str_at(ev.regarding, "/kind").to_lowercase();
    let target = match str_at(ev.regarding, "/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let component = non_empty(str_at(ev.source, "/component"), ev.reporting_controller);
    let host = non_empty(str_at(ev.source, "/host"), ev.reporting_instance);
    let source = if host.is_empty() { component.to_string() } else { format!("{component}, {host}") };
    cells![
        last,
        ev.ty,
        ev.reason,
        target,
        str_at(ev.regarding, "/fieldPath"),
        source,
        ev.message.trim(),
        first,
        count,
        ev.name,
    ]
}
