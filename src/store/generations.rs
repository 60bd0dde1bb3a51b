//! An append-only list of configuration generations, readable without locks.
//!
//! A decision made under generation `g` is re-attached to `g`'s quota sets later (to
//! render headers), possibly after a reload: so every generation's sets stay readable, by
//! plain reference, for the life of the store. They are small (a few hundred bytes per
//! generation), and the list is bounded ([`MAX_GENERATIONS`]).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

const CHUNK: usize = 64;
const CHUNKS: usize = 64;

/// Most configurations one store accepts in its life (the first included).
pub const MAX_GENERATIONS: usize = CHUNK * CHUNKS;

/// A chunk of generation slots, allocated when first needed.
type Chunk<T> = OnceLock<Box<[OnceLock<T>]>>;

pub(crate) struct Generations<T> {
    chunks: Box<[Chunk<T>]>,
    /// The newest published generation.
    current: AtomicU32,
    /// How many have been pushed (only the reloader writes, under its lock).
    len: AtomicU32,
}

impl<T> Generations<T> {
    pub(crate) fn new(first: T) -> Self {
        let g = Generations {
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
            current: AtomicU32::new(0),
            len: AtomicU32::new(0),
        };
        if g.push(first).is_err() {
            unreachable!("the first generation always fits");
        }
        g
    }

    fn slot(&self, g: u32) -> Option<&OnceLock<T>> {
        let g = g as usize;
        let chunk = self.chunks.get(g / CHUNK)?;
        Some(&chunk.get_or_init(|| (0..CHUNK).map(|_| OnceLock::new()).collect())[g % CHUNK])
    }

    /// Appends a generation (not yet current); its number, or the value back when full.
    /// Callers serialise pushes.
    pub(crate) fn push(&self, value: T) -> Result<u32, T> {
        let g = self.len.load(Ordering::Acquire);
        let Some(slot) = self.slot(g) else {
            return Err(value);
        };
        slot.set(value)?;
        self.len.store(g + 1, Ordering::Release);
        Ok(g)
    }

    /// Makes `g` (already pushed) the current generation.
    pub(crate) fn publish(&self, g: u32) {
        self.current.store(g, Ordering::Release);
    }

    /// Generation `g`, filled with `f` the first time it is asked for (lists that follow
    /// another's generations lazily, e.g. header values per configuration). `None` past
    /// [`MAX_GENERATIONS`].
    pub(crate) fn get_or_init(&self, g: u32, f: impl FnOnce() -> T) -> Option<&T> {
        self.slot(g).map(|slot| slot.get_or_init(f))
    }

    /// Generation `g`, if pushed.
    #[inline]
    pub(crate) fn get(&self, g: u32) -> Option<&T> {
        self.chunks.get(g as usize / CHUNK)?.get()?[g as usize % CHUNK].get()
    }

    /// The current generation and its number.
    #[inline]
    pub(crate) fn current(&self) -> (u32, &T) {
        let g = self.current.load(Ordering::Acquire);
        match self.get(g) {
            Some(v) => (g, v),
            None => unreachable!("a published generation is always set"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generation_stays_readable_until_full() {
        let gens = Generations::new(0usize);
        for i in 1..MAX_GENERATIONS {
            let g = gens.push(i).expect("room");
            assert_eq!(g as usize, i);
            gens.publish(g);
        }
        assert_eq!(gens.push(7), Err(7), "bounded");
        assert_eq!(
            gens.current(),
            ((MAX_GENERATIONS - 1) as u32, &(MAX_GENERATIONS - 1))
        );
        assert_eq!(gens.get(5), Some(&5));
        assert_eq!(gens.get(MAX_GENERATIONS as u32), None);
    }
}
