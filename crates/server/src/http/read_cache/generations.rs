//! The bounded map behind the read cache.

use std::collections::HashMap;
use std::hash::Hash;

use super::Rendered;

/// A map bounded in bytes that keeps what is used: new entries go to the young half;
/// when it is full the old half is dropped and the young one becomes old; a hit in the
/// old half moves the entry back to the young one. Holds at most twice `half` bytes.
pub(super) struct Generations<K> {
    young: HashMap<K, (Rendered, usize)>,
    old: HashMap<K, (Rendered, usize)>,
    young_bytes: usize,
    half: usize,
}

impl<K: Hash + Eq> Generations<K> {
    pub(super) fn new(half: usize) -> Self {
        Self {
            young: HashMap::new(),
            old: HashMap::new(),
            young_bytes: 0,
            half,
        }
    }

    pub(super) fn get<Q>(&mut self, key: &Q) -> Option<&Rendered>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.young.contains_key(key) {
            let (key, (entry, size)) = self.old.remove_entry(key)?;
            self.insert(key, entry, size);
        }
        self.young.get(key).map(|(r, _)| r)
    }

    pub(super) fn insert(&mut self, key: K, entry: Rendered, size: usize) {
        if size > self.half {
            return;
        }
        if self.young_bytes + size > self.half {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
        }
        self.old.remove(&key);
        if let Some((_, before)) = self.young.insert(key, (entry, size)) {
            self.young_bytes -= before;
        }
        self.young_bytes += size;
    }

    pub(super) fn remove(&mut self, key: &K) {
        if let Some((_, size)) = self.young.remove(key) {
            self.young_bytes -= size;
        }
        self.old.remove(key);
    }

    pub(super) fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
        self.young_bytes = 0;
    }
}

#[cfg(test)]
impl<K> Generations<K> {
    pub(super) fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}
