//! Queries run on read connections: current value, range at a revision, history pages.

use rusqlite::{Connection, OptionalExtension};

use super::{SqliteError, schema, sql};
use crate::{Event, EventType, KeyValue, RangeResult, Result, Revision, StoreError};

/// The half-open byte interval `[lower, upper)` of keys that start with a prefix.
///
/// Keys are UTF-8, and UTF-8 never contains the byte 0xFF, so incrementing the last byte
/// of the prefix always gives the first byte string past every key with that prefix, and
/// `[0xFF]` is past every key at all (for the empty prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyBounds {
    pub(super) lower: Vec<u8>,
    pub(super) upper: Vec<u8>,
}

impl KeyBounds {
    pub(super) fn prefix(prefix: &str) -> KeyBounds {
        let lower = prefix.as_bytes().to_vec();
        let mut upper = lower.clone();
        match upper.last_mut() {
            Some(last) => *last += 1,
            None => upper.push(0xFF),
        }
        KeyBounds { lower, upper }
    }
}

/// A range read, already checked against the current and compacted revisions.
#[derive(Debug, Clone)]
pub(super) struct RangeQuery {
    pub(super) bounds: KeyBounds,
    pub(super) start_after: Option<String>,
    /// 0 means no limit.
    pub(super) limit: usize,
    pub(super) revision: Revision,
}

/// One `log` row as stored, before its key is checked to be UTF-8.
struct RawRow {
    revision: Revision,
    name: Vec<u8>,
    value: Vec<u8>,
    create_revision: Revision,
}

impl RawRow {
    fn into_kv(self) -> Result<KeyValue> {
        let key = String::from_utf8(self.name).map_err(|_| SqliteError::InvalidKey { revision: self.revision })?;
        Ok(KeyValue { key, value: self.value, create_revision: self.create_revision, mod_revision: self.revision })
    }
}

/// Every revision of a key still in the log (index only).
const KEY_REVISIONS: &str = "SELECT revision FROM log WHERE name = ?1";
/// One row by revision.
const ROW_AT: &str = "SELECT revision, create_revision, deleted, value FROM log WHERE revision = ?1";

/// The newest row of `key`, deleted or not: (revision, create_revision, deleted, value).
///
/// Two plain lookups, not `ORDER BY revision DESC LIMIT 1` (or `MAX(revision)`): SQLite
/// (3.54, with STAT4) re-prepares a statement whose plan relies on the order of the
/// `(name, revision)` index under a bound `name = ?` on every run, which cost the writer
/// thread a parse and a plan per write. A key has a handful of revisions between
/// compactions, so reading them all from the index is cheap.
pub(super) fn latest(conn: &Connection, key: &str) -> Result<Option<LatestRow>> {
    let newest = conn
        .prepare_cached(KEY_REVISIONS)
        .and_then(|mut stmt| {
            let revisions = stmt.query_map([key.as_bytes()], |row| row.get::<_, Revision>(0))?;
            revisions.into_iter().try_fold(None, |newest: Option<Revision>, r| Ok(newest.max(Some(r?))))
        })
        .map_err(sql("read the revisions of a key"))?;
    let Some(revision) = newest else { return Ok(None) };
    conn.prepare_cached(ROW_AT)
        .and_then(|mut stmt| {
            stmt.query_row([revision], |row| {
                Ok(LatestRow {
                    revision: row.get(0)?,
                    create_revision: row.get(1)?,
                    deleted: row.get(2)?,
                    value: row.get(3)?,
                })
            })
            .optional()
        })
        .map_err(sql("read the newest row of a key"))
}

/// The newest row of one key.
#[derive(Debug, Clone)]
pub(super) struct LatestRow {
    pub(super) revision: Revision,
    pub(super) create_revision: Revision,
    pub(super) deleted: bool,
    pub(super) value: Vec<u8>,
}

impl LatestRow {
    /// The key's current value, or `None` when its newest row is a tombstone.
    pub(super) fn into_live(self, key: &str) -> Option<KeyValue> {
        (!self.deleted).then(|| KeyValue {
            key: key.to_owned(),
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.revision,
        })
    }
}

pub(super) fn get(conn: &Connection, key: &str) -> Result<Option<KeyValue>> {
    Ok(latest(conn, key)?.and_then(|row| row.into_live(key)))
}

/// Runs `f` inside one read transaction so that all its statements, including the
/// compaction check, see the same snapshot.
fn in_snapshot<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.execute_batch("BEGIN DEFERRED").map_err(sql("begin a read transaction"))?;
    let out = f(conn);
    let end = conn.execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
    match (out, end) {
        (Ok(value), Ok(())) => Ok(value),
        (Ok(_), Err(err)) => Err(sql("end a read transaction")(err)),
        (Err(err), _) => Err(err),
    }
}

pub(super) fn range(conn: &Connection, query: &RangeQuery) -> Result<RangeResult> {
    in_snapshot(conn, |conn| {
        let compacted = schema::compacted(conn)?;
        if query.revision < compacted {
            return Err(StoreError::Compacted { requested: query.revision, compacted });
        }
        // The lower bound is the prefix (inclusive) unless the continue key lies past it.
        let (lower_op, lower): (&str, &[u8]) = match &query.start_after {
            Some(after) if after.as_bytes() >= query.bounds.lower.as_slice() => (">", after.as_bytes()),
            _ => (">=", &query.bounds.lower),
        };
        // For each key, keep the newest row at or below the revision, unless it is a
        // tombstone. Walking the (name, revision) index in key order lets LIMIT stop the
        // scan early, which keeps paginated lists cheap.
        let statement = format!(
            "SELECT l.name, l.value, l.create_revision, l.revision FROM log AS l
             WHERE l.name {lower_op} ?1 AND l.name < ?2 AND l.revision <= ?3
               AND l.deleted = 0
               AND l.revision = (SELECT MAX(n.revision) FROM log AS n
                                 WHERE n.name = l.name AND n.revision <= ?3)
             ORDER BY l.name LIMIT ?4"
        );
        // One more row than asked tells whether more remain.
        let fetch: i64 = match query.limit {
            0 => -1,
            n => i64::try_from(n).map_or(i64::MAX, |n| n.saturating_add(1)),
        };
        let mut stmt = conn.prepare_cached(&statement).map_err(sql("prepare a range read"))?;
        let rows = stmt
            .query_map((lower, query.bounds.upper.as_slice(), query.revision, fetch), |row| {
                Ok(RawRow {
                    name: row.get(0)?,
                    value: row.get(1)?,
                    create_revision: row.get(2)?,
                    revision: row.get(3)?,
                })
            })
            .map_err(sql("run a range read"))?;
        let mut kvs = Vec::new();
        for row in rows {
            kvs.push(row.map_err(sql("read a range row"))?.into_kv()?);
        }
        let more = query.limit != 0 && kvs.len() > query.limit;
        kvs.truncate(if query.limit == 0 { kvs.len() } else { query.limit });
        Ok(RangeResult { kvs, more, revision: query.revision })
    })
}

/// Reads up to `limit` history events of keys within `bounds` with revisions in
/// `(after, until]`, oldest first. Fails with `Compacted` when compaction has removed
/// part of that interval.
pub(super) fn history(
    conn: &Connection,
    bounds: &KeyBounds,
    after: Revision,
    until: Revision,
    limit: usize,
) -> Result<Vec<Event>> {
    in_snapshot(conn, |conn| {
        let compacted = schema::compacted(conn)?;
        if after < compacted {
            return Err(StoreError::Compacted { requested: after, compacted });
        }
        // The previous row is only a `prev` value when it was live: the row before a
        // re-create is the tombstone of the earlier incarnation.
        let mut stmt = conn
            .prepare_cached(
                "SELECT l.revision, l.name, l.value, l.create_revision, l.deleted,
                        p.revision, p.value, p.create_revision
                 FROM log AS l
                 LEFT JOIN log AS p ON p.revision = l.prev_revision AND p.deleted = 0
                 WHERE l.revision > ?1 AND l.revision <= ?2
                   AND l.name >= ?3 AND l.name < ?4
                 ORDER BY l.revision LIMIT ?5",
            )
            .map_err(sql("prepare a history read"))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map((after, until, bounds.lower.as_slice(), bounds.upper.as_slice(), limit), |row| {
                let prev_revision: Option<Revision> = row.get(5)?;
                let prev = match prev_revision {
                    Some(revision) => Some((revision, row.get(6)?, row.get(7)?)),
                    None => None,
                };
                let deleted: bool = row.get(4)?;
                let event_type = if deleted { EventType::Delete } else { EventType::Put };
                let raw = RawRow {
                    revision: row.get(0)?,
                    name: row.get(1)?,
                    value: row.get(2)?,
                    create_revision: row.get(3)?,
                };
                Ok((event_type, raw, prev))
            })
            .map_err(sql("run a history read"))?;
        let mut events = Vec::new();
        for row in rows {
            let (event_type, raw, prev) = row.map_err(sql("read a history row"))?;
            let kv = raw.into_kv()?;
            let prev = prev.map(|(mod_revision, value, create_revision)| KeyValue {
                key: kv.key.clone(),
                value,
                create_revision,
                mod_revision,
            });
            events.push(Event { event_type, kv, prev });
        }
        Ok(events)
    })
}

#[cfg(test)]
mod tests {
    use super::KeyBounds;

    #[test]
    fn the_newest_row_of_a_key_is_read_without_re_preparing_statements() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::schema::open_writer(&dir.path().join("db")).unwrap();
        let insert = "INSERT INTO log (revision, name, create_revision, prev_revision, deleted, value)
                      VALUES (?1, ?2, ?3, 0, ?4, ?5)";
        // Revisions of three keys, interleaved; b's newest is a tombstone.
        for (rev, key, deleted) in [(1, "a", false), (2, "b", false), (3, "a", false), (4, "c", false), (5, "b", true)]
        {
            let value = format!("{key}@{rev}");
            conn.execute(insert, (rev, key.as_bytes(), 1, deleted, value.as_bytes())).unwrap();
        }
        for _ in 0..10 {
            let a = super::latest(&conn, "a").unwrap().unwrap();
            assert_eq!((a.revision, a.deleted, a.value.as_slice()), (3, false, b"a@3".as_slice()));
            let b = super::latest(&conn, "b").unwrap().unwrap();
            assert_eq!((b.revision, b.deleted), (5, true));
            assert!(super::latest(&conn, "nope").unwrap().is_none());
        }
        for sql in [super::KEY_REVISIONS, super::ROW_AT] {
            let stmt = conn.prepare_cached(sql).unwrap();
            assert!(stmt.get_status(rusqlite::StatementStatus::Run) >= 20, "{sql}");
            assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0, "{sql}");
        }
    }

    #[test]
    fn prefix_bounds_cover_exactly_the_prefix() {
        let cases: &[(&str, &str, bool)] = &[
            ("/registry/pods/default/", "/registry/pods/default/web", true),
            ("/registry/pods/default/", "/registry/pods/default2/web", false),
            ("/registry/pods/default/", "/registry/pods/default", false),
            ("/registry/pods/default/", "/registry/pods/default/", true),
            ("/a%_/", "/a%_/x", true),
            ("/a%_/", "/ab_/x", false),
            ("/é", "/é/x", true),
            ("/é", "/ê", false),
            ("", "/anything", true),
            ("", "\u{10FFFF}", true),
        ];
        for (prefix, key, inside) in cases {
            let bounds = KeyBounds::prefix(prefix);
            let key = key.as_bytes();
            let got = key >= bounds.lower.as_slice() && key < bounds.upper.as_slice();
            assert_eq!(got, *inside, "prefix {prefix:?} key {:?}", String::from_utf8_lossy(key));
        }
    }
}
