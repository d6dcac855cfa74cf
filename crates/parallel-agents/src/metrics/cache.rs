//! [`MetricsCache`]: an executor's metrics by key, bounded in entries and in key size.
//!
//! Consensus rounds store their metrics under their question, and questions can be
//! large and many, so the cache keeps at most [`METRICS_CACHE_CAPACITY`] keys (the least
//! recently stored or read goes first) and stores a long key compactly: a digest, its
//! length and a short preview instead of the text.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use crate::metrics::ExecutionMetrics;

/// Keys an executor's metrics cache holds; storing one more evicts the least recently
/// stored or read.
pub const METRICS_CACHE_CAPACITY: usize = 1024;
/// Keys up to this many bytes are kept whole; longer ones as digest, length and preview.
pub const METRICS_KEY_FULL_MAX: usize = 256;
/// Bytes of a long key kept as its preview (less if that would split a character).
const PREVIEW_BYTES: usize = 64;

/// A key as stored. Long keys compare by a 128-bit digest keyed with per-process random
/// keys (so collisions cannot be crafted), their length and their preview.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum StoredKey {
    Full(Box<str>),
    Digest {
        digest: [u64; 2],
        len: usize,
        preview: Box<str>,
    },
}

impl StoredKey {
    /// How the key appears in the metrics JSON: itself, or for a long key its preview,
    /// length and digest.
    fn display(&self) -> String {
        match self {
            StoredKey::Full(k) => k.to_string(),
            StoredKey::Digest {
                digest,
                len,
                preview,
            } => format!(
                "{preview}... ({len} bytes, digest {:016x}{:016x})",
                digest[0], digest[1]
            ),
        }
    }
}

#[derive(Default)]
struct State {
    /// key -> (metrics, recency stamp)
    map: HashMap<Arc<StoredKey>, (ExecutionMetrics, u64)>,
    /// recency stamp -> key, oldest first
    order: BTreeMap<u64, Arc<StoredKey>>,
    next: u64,
}

impl State {
    fn touch(&mut self, key: &Arc<StoredKey>) {
        let stamp = self.next;
        self.next += 1;
        if let Some((_, old)) = self.map.get_mut(key) {
            self.order.remove(old);
            *old = stamp;
            self.order.insert(stamp, Arc::clone(key));
        }
    }
}

/// Metrics by key, at most [`METRICS_CACHE_CAPACITY`] of them; thread-safe.
pub struct MetricsCache {
    state: Mutex<State>,
    hashers: [RandomState; 2],
}

impl Default for MetricsCache {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MetricsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsCache")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl MetricsCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self {
            state: Mutex::default(),
            hashers: [RandomState::new(), RandomState::new()],
        }
    }

    fn stored_key(&self, key: &str) -> StoredKey {
        if key.len() <= METRICS_KEY_FULL_MAX {
            return StoredKey::Full(key.into());
        }
        let mut end = PREVIEW_BYTES;
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        StoredKey::Digest {
            digest: self.hashers.each_ref().map(|h| h.hash_one(key)),
            len: key.len(),
            preview: key[..end].into(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Stores `metrics` under `key` (replacing any there), evicting the least recently
    /// used key if the cache is full.
    pub fn insert(&self, key: &str, metrics: ExecutionMetrics) {
        let key = Arc::new(self.stored_key(key));
        let mut st = self.lock();
        if let Some((m, _)) = st.map.get_mut(&key) {
            *m = metrics;
            st.touch(&key);
            return;
        }
        if st.map.len() >= METRICS_CACHE_CAPACITY {
            if let Some((_, oldest)) = st.order.pop_first() {
                st.map.remove(&oldest);
            }
        }
        let stamp = st.next;
        st.next += 1;
        st.order.insert(stamp, Arc::clone(&key));
        st.map.insert(key, (metrics, stamp));
    }

    /// The metrics stored under `key`, if it is still cached.
    pub fn get(&self, key: &str) -> Option<ExecutionMetrics> {
        let key = Arc::new(self.stored_key(key));
        let mut st = self.lock();
        let m = st.map.get(&key)?.0.clone();
        st.touch(&key);
        Some(m)
    }

    /// Keys cached.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry, oldest first, with its key as shown in JSON: the key itself, or for
    /// a key over [`METRICS_KEY_FULL_MAX`] bytes, `"{preview}... ({len} bytes, digest
    /// {hex})"`.
    pub fn entries(&self) -> Vec<(String, ExecutionMetrics)> {
        let st = self.lock();
        st.order
            .values()
            .map(|k| (k.display(), st.map[k].0.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(n: u64) -> ExecutionMetrics {
        ExecutionMetrics {
            successful_count: n,
            ..Default::default()
        }
    }

    #[test]
    fn keeps_the_most_recent_keys_up_to_capacity() {
        let c = MetricsCache::new();
        for i in 0..METRICS_CACHE_CAPACITY as u64 {
            c.insert(&format!("k{i}"), m(i));
        }
        // Reading k0 makes it recent: k1 is the oldest now.
        assert_eq!(c.get("k0"), Some(m(0)));
        c.insert("new", m(7));
        assert_eq!(c.len(), METRICS_CACHE_CAPACITY);
        assert_eq!(c.get("k1"), None);
        assert_eq!(c.get("k0"), Some(m(0)));
        assert_eq!(c.get("new"), Some(m(7)));
        // Replacing a key neither grows the cache nor evicts anything.
        c.insert("new", m(8));
        assert_eq!(
            (c.len(), c.get("new")),
            (METRICS_CACHE_CAPACITY, Some(m(8)))
        );
        assert_eq!(c.get("k2"), Some(m(2)));
    }

    #[test]
    fn long_keys_are_stored_compactly_and_still_looked_up_exactly() {
        let c = MetricsCache::new();
        // 200,001 bytes; byte 64 falls inside an "é", so the preview cut must step back.
        let a = format!("a{}", "é".repeat(100_000));
        // Same length and preview, different text.
        let b = format!("{}ee", &a[..a.len() - 2]);
        c.insert(&a, m(1));
        assert_eq!(c.get(&a), Some(m(1)));
        assert_eq!(c.get(&b), None);
        assert_eq!(c.get(&a[..a.len() - 2]), None);
        let (shown, _) = c.entries().pop().unwrap();
        assert!(shown.len() < 200, "{shown}");
        assert!(shown.contains("200001 bytes"), "{shown}");
        // A short key is kept and shown as it is.
        c.insert("short", m(2));
        assert_eq!(c.entries()[1].0, "short");
    }
}
