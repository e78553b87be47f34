//! A typed arena with a free list: the storage behind orders and levels.
//!
//! Like a slab, but without a tag per slot, so a slot is exactly its
//! value's size: with 32-byte orders aligned to 32 bytes, reaching an order
//! costs one cache line, never two. Keys are `u32` to keep the links
//! between orders and levels small. Keys are only ever handed out and
//! used by the engine itself, which never reads a freed slot.

use std::ops::{Index, IndexMut};

/// Values of `T` by `u32` key, reusing freed keys first.
#[derive(Debug, Clone)]
pub(crate) struct Arena<T> {
    items: Vec<T>,
    /// Keys of freed slots, reused last-freed first (the warmest in cache).
    free: Vec<u32>,
}

impl<T: Copy> Arena<T> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            items: Vec::with_capacity(capacity),
            free: Vec::new(),
        }
    }

    /// Stores `value` and returns its key.
    #[inline]
    pub(crate) fn insert(&mut self, value: T) -> u32 {
        if let Some(key) = self.free.pop() {
            self.items[key as usize] = value;
            key
        } else {
            // The last u32 is the "no order" link, so it is never a key.
            let key = u32::try_from(self.items.len())
                .ok()
                .filter(|&key| key != u32::MAX)
                .expect("fewer than 2^32 - 1 live orders and levels per product");
            self.items.push(value);
            key
        }
    }

    /// Frees the slot of `key` and returns what it held.
    #[inline]
    pub(crate) fn remove(&mut self, key: u32) -> T {
        let value = self.items[key as usize];
        self.free.push(key);
        value
    }

    /// Bytes of heap memory the arena holds.
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.items.capacity() * size_of::<T>() + self.free.capacity() * size_of::<u32>()
    }

    /// Number of live values.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.items.len() - self.free.len()
    }
}

impl<T> Index<u32> for Arena<T> {
    type Output = T;

    #[inline]
    fn index(&self, key: u32) -> &T {
        &self.items[key as usize]
    }
}

impl<T> IndexMut<u32> for Arena<T> {
    #[inline]
    fn index_mut(&mut self, key: u32) -> &mut T {
        &mut self.items[key as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_keys_are_reused_last_freed_first() {
        let mut arena = Arena::with_capacity(4);
        let a = arena.insert('a');
        let b = arena.insert('b');
        let c = arena.insert('c');
        assert_eq!(arena.remove(a), 'a');
        assert_eq!(arena.remove(c), 'c');
        assert_eq!(arena.len(), 1);
        assert_eq!(arena.insert('d'), c);
        assert_eq!(arena.insert('e'), a);
        assert_eq!(arena.insert('f'), 3);
        assert_eq!((arena[b], arena[c], arena[a]), ('b', 'd', 'e'));
        arena[b] = 'g';
        assert_eq!(arena[b], 'g');
    }
}
