//! Watch streams: history from the table, then live events from the writer.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::read::{self, KeyBounds};
use super::{Shared, SqliteError};
use crate::{Event, Result, Revision, WatchStream};

/// History rows read per blocking task; bounds memory when replaying a long history.
const HISTORY_PAGE: usize = 512;

struct Watch {
    shared: Arc<Shared>,
    prefix: String,
    bounds: KeyBounds,
    /// The newest revision delivered (or skipped as not matching) so far.
    cursor: Revision,
    /// History up to here comes from the table; anything newer from `live`.
    replay_until: Revision,
    live: broadcast::Receiver<Arc<[Event]>>,
    ready: VecDeque<Event>,
    finished: bool,
}

/// Builds the stream for `SqliteStore::watch`. `live` must have been subscribed before
/// `replay_until` was read, so every event above `replay_until` arrives on it.
pub(super) fn stream(
    shared: Arc<Shared>,
    prefix: &str,
    after: Revision,
    replay_until: Revision,
    live: broadcast::Receiver<Arc<[Event]>>,
) -> WatchStream {
    let watch = Watch {
        shared,
        prefix: prefix.to_owned(),
        bounds: KeyBounds::prefix(prefix),
        cursor: after,
        replay_until,
        live,
        ready: VecDeque::new(),
        finished: false,
    };
    futures::stream::unfold(watch, |mut watch| async move {
        let item = watch.next().await?;
        Some((item, watch))
    })
    .boxed()
}

impl Watch {
    /// The next item, or `None` once the stream is over.
    async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            let filled =
                if self.cursor < self.replay_until { self.read_history().await } else { self.receive_live().await };
            if let Err(err) = filled {
                self.finished = true;
                return err.map(Err);
            }
        }
    }

    /// Reads the next page of history into `ready`.
    async fn read_history(&mut self) -> Result<(), Option<crate::StoreError>> {
        let (bounds, after, until) = (self.bounds.clone(), self.cursor, self.replay_until);
        let page = self
            .shared
            .read("watch history", move |conn| read::history(conn, &bounds, after, until, HISTORY_PAGE))
            .await
            .map_err(Some)?;
        self.cursor = match page.last() {
            // A short page is the end of the history.
            Some(last) if page.len() == HISTORY_PAGE => last.kv.mod_revision,
            _ => self.replay_until,
        };
        self.ready.extend(page);
        Ok(())
    }

    /// Waits for the next published batch and keeps its matching, not yet seen events.
    /// Errs with `None` when the store has closed.
    async fn receive_live(&mut self) -> Result<(), Option<crate::StoreError>> {
        match self.live.recv().await {
            Ok(batch) => {
                for event in batch.iter() {
                    if event.kv.mod_revision > self.cursor && event.kv.key.starts_with(&self.prefix) {
                        self.ready.push_back(event.clone());
                    }
                }
                if let Some(last) = batch.last() {
                    self.cursor = self.cursor.max(last.kv.mod_revision);
                }
                Ok(())
            }
            // Ending the stream is how a slow watcher is told to re-list; keeping it would
            // mean buffering without bound or blocking the writer.
            Err(RecvError::Lagged(missed)) => Err(Some(SqliteError::WatchLagged { missed }.into())),
            Err(RecvError::Closed) => Err(None),
        }
    }
}
