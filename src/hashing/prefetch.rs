//! [`HashPrefetcher`]: hash the next batches on a background thread while the current step runs.

use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use super::{HashIds, NgramHasher};
use crate::error::Result;

/// Hashes a stream of `(token ids, batch, seq_len)` batches on its own thread, at most
/// `ahead` batches ahead of the consumer, and yields their [`HashIds`] in order.
///
/// Hash ids depend on token ids only, so the data loader can compute them while the device
/// runs the current step; the consumer then only uploads them
/// ([`crate::EngramLayers::upload`]). Dropping the prefetcher stops the thread after the batch
/// it is hashing.
///
/// ```
/// # fn main() -> Result<(), burn_engram::EngramError> {
/// use std::sync::Arc;
/// use burn_engram::hashing::HashPrefetcher;
/// use burn_engram::{CompressedVocab, EngramConfig, NgramHasher};
/// let vocab = Arc::new(CompressedVocab::from_lookup((0..100).collect())?);
/// let cfg = EngramConfig { engram_vocab_size: vec![50, 30], layer_ids: vec![1], pad_id: 0,
///     ..EngramConfig::default() };
/// let hasher = NgramHasher::new(&cfg, vocab)?;
/// let batches = vec![(vec![1, 2, 3, 4], 2, 2), (vec![5, 6, 7, 8], 1, 4)];
/// let expected = hasher.hash(&batches[1].0, 1, 4)?;
/// let hashed: Vec<_> = HashPrefetcher::spawn(hasher, batches, 1).collect::<Result<_, _>>()?;
/// assert_eq!(hashed.len(), 2);
/// assert_eq!(hashed[1], expected);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct HashPrefetcher {
    rx: Option<Receiver<Result<HashIds>>>,
    handle: Option<JoinHandle<()>>,
}

impl HashPrefetcher {
    /// Starts hashing `batches` (each `(ids, batch, seq_len)`, row-major) with `hasher`,
    /// keeping at most `ahead` (at least 1) finished batches waiting.
    pub fn spawn<I>(hasher: NgramHasher, batches: I, ahead: usize) -> Self
    where
        I: IntoIterator<Item = (Vec<i64>, usize, usize)>,
        I::IntoIter: Send + 'static,
    {
        let (tx, rx) = sync_channel(ahead.max(1));
        let batches = batches.into_iter();
        let handle = std::thread::Builder::new()
            .name("engram-hash-prefetch".into())
            .spawn(move || {
                for (ids, b, t) in batches {
                    if tx.send(hasher.hash(&ids, b, t)).is_err() {
                        break; // the consumer is gone
                    }
                }
            })
            .expect("spawning the hash prefetch thread");
        Self {
            rx: Some(rx),
            handle: Some(handle),
        }
    }
}

impl Iterator for HashPrefetcher {
    type Item = Result<HashIds>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for HashPrefetcher {
    fn drop(&mut self) {
        self.rx.take(); // unblocks a sender waiting on a full channel
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
