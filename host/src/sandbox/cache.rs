//! The one place the host uses `unsafe`: loading a precompiled module from the cache.
#![allow(unsafe_code)]

use std::path::Path;

use anyhow::Result;
use wasmtime::{Engine, Module};

/// Load a module serialized by [`Module::serialize`].
pub fn deserialize(engine: &Engine, path: &Path) -> Result<Module> {
    // SAFETY: wasmtime requires the file to be one it produced with the same version and settings.
    // The cache lives in the CA's data directory (0700, written only by this program), and its
    // name carries the module's SHA-256 and the wasmtime version, so a different module or
    // wasmtime never picks up a stale file; wasmtime also checks the version and settings inside.
    Ok(unsafe { Module::deserialize_file(engine, path) }?)
}
