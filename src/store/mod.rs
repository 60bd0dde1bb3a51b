//! Where limiter state lives. [`memory`] is the in-process, lock-free store.

pub mod memory;
