//! [`MemJournal`]: a [`Journal`] that keeps records in memory and completes every append at once.
//!
//! For tests and benches of the switch core, where a disk would only add noise and flakiness. It
//! keeps the contract that matters to callers (LSNs from 1 in append order, `Closed` after
//! [`Journal::close`]) and nothing about durability, so it must never back a real switch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use super::{Admission, AppendTicket, Journal, JournalError, Lsn};

/// An in-memory journal: every record in a vector, each append complete when it returns.
#[derive(Debug, Default)]
pub struct MemJournal {
    records: Mutex<Vec<(Lsn, Bytes)>>,
    closed: AtomicBool,
}

impl MemJournal {
    /// An empty journal; the first append gets LSN 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every record appended so far, in LSN order (a clone; payloads share their buffers).
    pub fn records(&self) -> Vec<(Lsn, Bytes)> {
        self.lock().clone()
    }

    fn push(&self, payload: Bytes) -> Result<Lsn, JournalError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(JournalError::Closed);
        }
        let mut records = self.lock();
        let lsn = records.len() as Lsn + 1;
        records.push((lsn, payload));
        Ok(lsn)
    }

    /// A panic elsewhere while holding the lock cannot leave the vector half updated (a push is the
    /// only mutation), so a poisoned lock is still safe to use.
    fn lock(&self) -> MutexGuard<'_, Vec<(Lsn, Bytes)>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Journal for MemJournal {
    // No queue, so no depth to refuse for.
    fn append_as(&self, payload: &[u8], _: Admission) -> AppendTicket {
        AppendTicket::ready(self.push(Bytes::copy_from_slice(payload)))
    }

    fn append_covered(&self, payload: &[u8], _: Admission) -> Result<(), JournalError> {
        self.push(Bytes::copy_from_slice(payload)).map(drop)
    }

    fn flush(&self) -> AppendTicket {
        AppendTicket::ready(Ok(self.lock().len() as Lsn))
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn numbers_records_from_one_and_keeps_them_in_order() {
        let journal = MemJournal::new();
        assert_eq!(journal.flush().await.unwrap(), 0);
        assert_eq!(journal.append(b"a").await.unwrap(), 1);
        assert_eq!(journal.append(b"b").await.unwrap(), 2);
        assert_eq!(journal.flush().await.unwrap(), 2);
        assert_eq!(
            journal.records(),
            vec![(1, Bytes::from_static(b"a")), (2, Bytes::from_static(b"b"))]
        );
    }

    #[tokio::test]
    async fn refuses_appends_after_close() {
        let journal = MemJournal::new();
        journal.append(b"kept").await.unwrap();
        journal.close();
        let refused = journal.append(b"late").await;
        assert!(matches!(refused, Err(JournalError::Closed)), "{refused:?}");
        assert_eq!(journal.records().len(), 1);
    }

    #[tokio::test]
    async fn works_behind_the_trait_object() {
        let journal: std::sync::Arc<dyn Journal> = std::sync::Arc::new(MemJournal::new());
        assert_eq!(journal.append(&[]).await.unwrap(), 1);
    }
}

/// A [`MemJournal`] that holds covered records back until the next ticketed append or flush, as
/// [`super::FileJournal`] writes them: for tests of code that queues covered records and must see
/// them written.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct CoveringJournal {
    written: MemJournal,
    held: Mutex<Vec<Bytes>>,
    /// How many records are written, for tests to wait on.
    count: tokio::sync::watch::Sender<usize>,
}

#[cfg(test)]
impl CoveringJournal {
    pub(crate) fn new() -> Self {
        CoveringJournal {
            written: MemJournal::new(),
            held: Mutex::new(Vec::new()),
            count: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The records written so far: not the ones still held.
    pub(crate) fn written(&self) -> Vec<(Lsn, Bytes)> {
        self.written.records()
    }

    /// The number of records written, as it changes.
    pub(crate) fn written_watch(&self) -> tokio::sync::watch::Receiver<usize> {
        self.count.subscribe()
    }

    fn release(&self) -> Result<(), JournalError> {
        let held = std::mem::take(&mut *self.held.lock().unwrap_or_else(PoisonError::into_inner));
        let released = held
            .into_iter()
            .try_for_each(|p| self.written.push(p).map(drop));
        self.count.send_replace(self.written.lock().len());
        released
    }
}

#[cfg(test)]
impl Journal for CoveringJournal {
    fn append_as(&self, payload: &[u8], admission: Admission) -> AppendTicket {
        match self.release() {
            Ok(()) => {
                let ticket = self.written.append_as(payload, admission);
                self.count.send_replace(self.written.lock().len());
                ticket
            }
            Err(e) => AppendTicket::ready(Err(e)),
        }
    }

    fn append_covered(&self, payload: &[u8], _: Admission) -> Result<(), JournalError> {
        if self.written.closed.load(Ordering::Acquire) {
            return Err(JournalError::Closed);
        }
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Bytes::copy_from_slice(payload));
        Ok(())
    }

    fn flush(&self) -> AppendTicket {
        match self.release() {
            Ok(()) => self.written.flush(),
            Err(e) => AppendTicket::ready(Err(e)),
        }
    }

    fn close(&self) {
        self.written.close();
    }
}
