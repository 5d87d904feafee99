//! The function libraries of `FUNCTION LOAD`: data like keys — logged, replicated and saved
//! in snapshots with the dataset (the code is the data; the compiled Lua lives in the node's
//! engine and is rebuilt from here).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use vigil_lua::FunctionInfo;

/// One library.
#[derive(Debug, Clone)]
pub struct Library {
    /// Its name (from `#!lua name=...`).
    pub name: String,
    /// Its code as loaded.
    pub code: Bytes,
    /// The functions it registered.
    pub functions: Vec<FunctionInfo>,
}

/// Versions are unique in the process: a store replaced by a full sync or a restore never
/// shows an engine the version it was built at with other libraries.
static NEXT_VERSION: AtomicU64 = AtomicU64::new(1);

fn next_version() -> u64 {
    NEXT_VERSION.fetch_add(1, Ordering::Relaxed)
}

/// Every library, by name; `version` changes with every change, so engines know to reload.
#[derive(Debug, Default, Clone)]
pub struct Libraries {
    /// The libraries.
    pub libs: BTreeMap<String, Library>,
    /// Bumped on every change.
    pub version: u64,
}

impl Libraries {
    /// The library holding function `name`, and the function.
    pub fn function(&self, name: &str) -> Option<(&Library, &FunctionInfo)> {
        self.libs
            .values()
            .find_map(|l| l.functions.iter().find(|f| f.name == name).map(|f| (l, f)))
    }

    /// Adds (or with `replace`, replaces) a library, refusing a function name another
    /// library holds, worded as Redis words it.
    pub fn add(&mut self, lib: Library, replace: bool) -> Result<(), String> {
        if self.libs.contains_key(&lib.name) && !replace {
            return Err(format!("ERR Library '{}' already exists", lib.name));
        }
        for f in &lib.functions {
            if let Some((other, _)) = self.function(&f.name)
                && other.name != lib.name
            {
                return Err(format!("ERR Function {} already exists", f.name));
            }
        }
        self.libs.insert(lib.name.clone(), lib);
        self.version = next_version();
        Ok(())
    }

    /// Removes a library; whether it existed.
    pub fn delete(&mut self, name: &str) -> bool {
        let gone = self.libs.remove(name).is_some();
        if gone {
            self.version = next_version();
        }
        gone
    }

    /// Marks a change made by replacing the whole set.
    pub fn touch(&mut self) {
        self.version = next_version();
    }

    /// Removes every library.
    pub fn clear(&mut self) {
        self.libs.clear();
        self.version = next_version();
    }

    /// Functions over all libraries.
    pub fn function_count(&self) -> usize {
        self.libs.values().map(|l| l.functions.len()).sum()
    }
}
