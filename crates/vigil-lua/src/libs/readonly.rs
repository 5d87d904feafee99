//! Read-only library tables, as Redis 7.0.15 makes `cjson`, `bit`, `struct`, `cmsgpack` (and
//! the standard libraries): any write — `t.k = v`, `rawset`, `setmetatable` — fails with
//! `Attempt to modify a readonly table`, so one script cannot change what the next one runs.
//!
//! Redis marks the tables in its patched Lua VM. Stock Lua 5.1 has no such flag, so a protected
//! table is an empty proxy whose metatable reads from the real table and refuses writes; the
//! functions that bypass metatables (`rawset`, `setmetatable`, `getmetatable`, `rawget`,
//! `next`, `pairs`) are replaced by C-like versions that know the proxies, so scripts see what
//! Redis shows: iteration and raw reads reach the real table, and `getmetatable` answers nil.
//! Known difference: `#t`, `ipairs` and `rawequal` on a proxy see the proxy (the library tables
//! have no array part, so `#` and `ipairs` agree anyway).

use mlua::{Function, Lua, MultiValue, Table, Value};

use super::{LibError, Ret, lib_fn_capped, num};

/// What Redis answers to a write into a read-only table.
pub const READONLY_ERROR: &str = "Attempt to modify a readonly table";

/// Registry key of the weak table mapping each proxy to the table it protects.
const PROXIES: &str = "vigil.readonly.proxies";

fn proxies(lua: &Lua) -> mlua::Result<Table> {
    if let Ok(t) = lua.named_registry_value::<Table>(PROXIES) {
        return Ok(t);
    }
    let t = lua.create_table()?;
    let mt = lua.create_table()?;
    mt.raw_set("__mode", "k")?;
    t.set_metatable(Some(mt))?;
    lua.set_named_registry_value(PROXIES, &t)?;
    Ok(t)
}

/// Returns a read-only view of `target` (see the module docs).
pub fn protect(lua: &Lua, target: Table) -> mlua::Result<Table> {
    let proxy = lua.create_table()?;
    let mt = lua.create_table()?;
    mt.raw_set("__index", &target)?;
    // An error raised from a C function names the caller's line, as the VM's check does.
    mt.raw_set(
        "__newindex",
        lib_fn_capped(lua, 0, |_, _| Err(LibError::Msg(READONLY_ERROR.into())))?,
    )?;
    proxy.set_metatable(Some(mt))?;
    proxies(lua)?.raw_set(&proxy, target)?;
    Ok(proxy)
}

fn is_proxy(lua: &Lua, v: &Value) -> mlua::Result<bool> {
    Ok(match v {
        Value::Table(t) => proxies(lua)?.raw_get::<Value>(t)? != Value::Nil,
        _ => false,
    })
}

/// The table a proxy protects, or `t` itself.
fn real(lua: &Lua, t: Table) -> Result<Table, LibError> {
    match proxies(lua)
        .and_then(|p| p.raw_get::<Value>(&t))
        .map_err(to_lib)?
    {
        Value::Table(target) => Ok(target),
        _ => Ok(t),
    }
}

fn to_lib(e: mlua::Error) -> LibError {
    LibError::Msg(e.to_string())
}

/// `luaL_checktype(L, i, LUA_TTABLE)`.
fn check_table(args: &MultiValue, i: usize) -> Result<Table, LibError> {
    match args.get(i - 1) {
        Some(Value::Table(t)) => Ok(t.clone()),
        _ => Err(num::type_error(args, i, "table")),
    }
}

/// `luaL_checkany`.
fn check_any(args: &MultiValue, i: usize) -> Result<Value, LibError> {
    args.get(i - 1)
        .cloned()
        .ok_or_else(|| LibError::Arg(i as i32, "value expected".into()))
}

/// Replaces the global functions that bypass `__newindex`/`__index` with versions that respect
/// the proxies made by [`protect`]. Call once, on a fresh state, before scripts run.
pub fn guard_raw_access(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    g.raw_set(
        "rawset",
        lib_fn_capped(lua, 3, |lua, args| {
            let t = check_table(&args, 1)?;
            let k = check_any(&args, 2)?;
            let v = check_any(&args, 3)?;
            if is_proxy(lua, &args[0]).map_err(to_lib)? {
                return Err(LibError::Raw(READONLY_ERROR.into()));
            }
            match &k {
                Value::Nil => return Err(LibError::Raw("table index is nil".into())),
                Value::Number(n) if n.is_nan() => {
                    return Err(LibError::Raw("table index is NaN".into()));
                }
                _ => {}
            }
            t.raw_set(k, v).map_err(to_lib)?;
            Ok(Ret::from_iter([Value::Table(t)]))
        })?,
    )?;
    g.raw_set(
        "setmetatable",
        lib_fn_capped(lua, 2, |lua, args| {
            let t = check_table(&args, 1)?;
            let mt = match args.get(1) {
                Some(Value::Nil) => None,
                Some(Value::Table(m)) => Some(m.clone()),
                _ => return Err(LibError::Arg(2, "nil or table expected".into())),
            };
            if is_proxy(lua, &args[0]).map_err(to_lib)? {
                return Err(LibError::Raw(READONLY_ERROR.into()));
            }
            let locked = match t.metatable() {
                Some(old) => old.raw_get::<Value>("__metatable").map_err(to_lib)? != Value::Nil,
                None => false,
            };
            if locked {
                return Err(LibError::Msg("cannot change a protected metatable".into()));
            }
            t.set_metatable(mt).map_err(to_lib)?;
            Ok(Ret::from_iter([Value::Table(t)]))
        })?,
    )?;
    // Reads: a proxy stands for its target.
    let orig_getmetatable: Function = g.raw_get("getmetatable")?;
    let orig_next: Function = g.raw_get("next")?;
    let next = orig_next.clone();
    g.raw_set(
        "getmetatable",
        lib_fn_capped(lua, 1, move |lua, args| {
            let v = check_any(&args, 1)?;
            if is_proxy(lua, &v).map_err(to_lib)? {
                return Ok(Ret::from_iter([Value::Nil]));
            }
            orig_getmetatable.call(v).map(Ret::Values).map_err(to_lib)
        })?,
    )?;
    g.raw_set(
        "rawget",
        lib_fn_capped(lua, 2, |lua, args| {
            let t = real(lua, check_table(&args, 1)?)?;
            let k = check_any(&args, 2)?;
            Ok(Ret::from_iter([t.raw_get::<Value>(k).map_err(to_lib)?]))
        })?,
    )?;
    g.raw_set(
        "next",
        lib_fn_capped(lua, 2, move |lua, args| {
            let t = real(lua, check_table(&args, 1)?)?;
            let k = args.get(1).cloned().unwrap_or(Value::Nil);
            // The C `next` raises "invalid key to 'next'" without a position.
            next.call((t, k)).map(Ret::Values).map_err(|e| match e {
                mlua::Error::RuntimeError(m) => {
                    // Without the traceback mlua adds.
                    LibError::Raw(m.split("\nstack traceback:").next().unwrap_or("").into())
                }
                e => to_lib(e),
            })
        })?,
    )?;
    g.raw_set(
        "pairs",
        lib_fn_capped(lua, 1, move |lua, args| {
            let t = real(lua, check_table(&args, 1)?)?;
            Ok(Ret::from_iter([
                Value::Function(orig_next.clone()),
                Value::Table(t),
                Value::Nil,
            ]))
        })?,
    )?;
    Ok(())
}
