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
    /// The library holding function `name` (any case, as Redis' function names), and the
    /// function.
    pub fn function(&self, name: &str) -> Option<(&Library, &FunctionInfo)> {
        self.libs.values().find_map(|l| {
            l.functions
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name))
                .map(|f| (l, f))
        })
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

/// Compiles a library in a throwaway engine (within Redis' load timeout): checks it and
/// learns its functions.
pub fn compile(code: &Bytes) -> Result<Library, String> {
    let mut engine = vigil_lua::Engine::new(Default::default()).map_err(|e| format!("ERR {e}"))?;
    let (name, functions) = engine.load_library_within(code)?;
    Ok(Library {
        name,
        code: code.clone(),
        functions,
    })
}

/// Compiles a library for a snapshot being loaded.
pub fn compile_library(code: &[u8]) -> Result<Library, String> {
    compile(&Bytes::copy_from_slice(code))
}

/// FUNCTION DUMP's payload (Vigil's own format): `VGLF`, version 1, count (u32), each
/// library's code (u32 length + bytes), then a CRC-32 of all before it. Little-endian.
pub fn dump(libs: &Libraries) -> Vec<u8> {
    let mut out = b"VGLF".to_vec();
    out.push(1);
    out.extend_from_slice(&(libs.libs.len() as u32).to_le_bytes());
    for lib in libs.libs.values() {
        out.extend_from_slice(&(lib.code.len() as u32).to_le_bytes());
        out.extend_from_slice(&lib.code);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

const BAD_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";

/// Parses a FUNCTION DUMP payload into the libraries' codes; every length is checked against
/// what the payload holds.
pub fn undump(b: &[u8]) -> Result<Vec<Bytes>, String> {
    if b.len() < 13 || &b[..4] != b"VGLF" || b[4] != 1 {
        return Err(BAD_PAYLOAD.into());
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(BAD_PAYLOAD.into());
    }
    let mut pos = 5;
    let u32_at = |pos: &mut usize| -> Result<usize, String> {
        let v = body
            .get(*pos..*pos + 4)
            .ok_or_else(|| BAD_PAYLOAD.to_string())?;
        *pos += 4;
        Ok(u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as usize)
    };
    let count = u32_at(&mut pos)?;
    let mut out = Vec::new();
    for _ in 0..count {
        let len = u32_at(&mut pos)?;
        let code = body
            .get(pos..pos.saturating_add(len))
            .ok_or_else(|| BAD_PAYLOAD.to_string())?;
        pos += len;
        out.push(Bytes::copy_from_slice(code));
    }
    if pos != body.len() {
        return Err(BAD_PAYLOAD.into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_round_trips_and_garbage_is_refused() {
        let mut libs = Libraries::default();
        let code = Bytes::from_static(
            b"#!lua name=l\nredis.register_function('f', function() return 1 end)",
        );
        libs.add(compile_library(&code).unwrap(), false).unwrap();
        let d = dump(&libs);
        assert_eq!(undump(&d).unwrap(), vec![code]);
        for i in 0..d.len() {
            let mut bad = d.clone();
            bad[i] ^= 0x55;
            assert!(undump(&bad).is_err(), "#{i}");
            assert!(undump(&d[..i]).is_err(), "#{i}");
        }
    }
}
