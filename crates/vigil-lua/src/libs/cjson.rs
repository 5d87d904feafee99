//! `cjson`: lua-cjson 2.1.0 as Redis 7.0 ships it — `encode`, `decode`, `new` and the
//! configuration functions, with its number format (`%.14g`), escapes (`/` as `\/`), array
//! detection (keys exactly 1..n, with the sparse-array rules; the empty table is `{}`), nesting
//! limits and error messages. `cjson.null` is the NULL light userdata.

use std::sync::{Arc, Mutex};

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

use super::{LibError, LibResult, MAXCSTACK, Ret, lib_fn_capped, num};

mod decode;
mod encode;

/// One instance's settings (`cjson.new()` makes another).
#[derive(Debug, Clone)]
struct Config {
    sparse_convert: i32,
    sparse_ratio: i32,
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    /// 0 off (error), 1 on (`NaN`, `Infinity`), 2 `null`.
    encode_invalid_numbers: i32,
    decode_invalid_numbers: i32,
    keep_buffer: i32,
    precision: i32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sparse_convert: 0,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid_numbers: 0,
            decode_invalid_numbers: 1,
            keep_buffer: 1,
            precision: 14,
        }
    }
}

type Shared = Arc<Mutex<Config>>;

/// A `cjson` function's body, given its instance's settings.
type CfgBody = Box<dyn Fn(&Lua, MultiValue, &Shared) -> LibResult + Send>;

fn cfg(c: &Shared) -> std::sync::MutexGuard<'_, Config> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

fn lua_err(e: mlua::Error) -> LibError {
    LibError::Msg(e.to_string())
}

/// Builds a `cjson` table with its own settings.
pub(crate) fn open(lua: &Lua) -> mlua::Result<Table> {
    let c: Shared = Arc::new(Mutex::new(Config::default()));
    let t = lua.create_table()?;
    // Each function's cap is one more argument than it accepts, to keep the error for extras.
    let add = |name: &str, cap, f: CfgBody| {
        let c = c.clone();
        t.raw_set(name, lib_fn_capped(lua, cap, move |lua, a| f(lua, a, &c))?)
    };
    add(
        "encode",
        2,
        Box::new(|lua, a, c| encode::encode(lua, &a, &cfg(c).clone())),
    )?;
    add(
        "decode",
        2,
        Box::new(|lua, a, c| decode::decode(lua, &a, &cfg(c).clone())),
    )?;
    add(
        "encode_sparse_array",
        4,
        Box::new(|lua, a, c| {
            arg_init(&a, 3)?;
            let mut g = cfg(c);
            let convert = enum_option(lua, &a, 1, &mut g.sparse_convert, None)?;
            let ratio = int_option(&a, 2, &mut g.sparse_ratio, 0, i32::MAX)?;
            let safe = int_option(&a, 3, &mut g.sparse_safe, 0, i32::MAX)?;
            Ok(Ret::from_iter([convert, ratio, safe]))
        }),
    )?;
    add(
        "encode_max_depth",
        2,
        Box::new(|_, a, c| int_cfg(&a, &mut cfg(c).encode_max_depth, 1, i32::MAX)),
    )?;
    add(
        "decode_max_depth",
        2,
        Box::new(|_, a, c| int_cfg(&a, &mut cfg(c).decode_max_depth, 1, i32::MAX)),
    )?;
    add(
        "encode_number_precision",
        2,
        Box::new(|_, a, c| int_cfg(&a, &mut cfg(c).precision, 1, 14)),
    )?;
    add(
        "encode_keep_buffer",
        2,
        Box::new(|lua, a, c| {
            arg_init(&a, 1)?;
            let v = enum_option(lua, &a, 1, &mut cfg(c).keep_buffer, None)?;
            Ok(Ret::from_iter([v]))
        }),
    )?;
    add(
        "encode_invalid_numbers",
        2,
        Box::new(|lua, a, c| {
            arg_init(&a, 1)?;
            let opts: &[&str] = &["off", "on", "null"];
            let v = enum_option(lua, &a, 1, &mut cfg(c).encode_invalid_numbers, Some(opts))?;
            Ok(Ret::from_iter([v]))
        }),
    )?;
    add(
        "decode_invalid_numbers",
        2,
        Box::new(|lua, a, c| {
            arg_init(&a, 1)?;
            let v = enum_option(lua, &a, 1, &mut cfg(c).decode_invalid_numbers, None)?;
            Ok(Ret::from_iter([v]))
        }),
    )?;
    t.raw_set(
        "new",
        lib_fn_capped(lua, 0, |lua, _| {
            let t = open(lua).map_err(lua_err)?;
            Ok(Ret::from_iter([Value::Table(t)]))
        })?,
    )?;
    t.raw_set(
        "null",
        Value::LightUserData(LightUserData(std::ptr::null_mut())),
    )?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    Ok(t)
}

/// `json_arg_init`: at most `n` arguments.
fn arg_init(a: &MultiValue, n: usize) -> Result<(), LibError> {
    if a.len() > n {
        return Err(LibError::Arg(
            n as i32 + 1,
            "found too many arguments".into(),
        ));
    }
    Ok(())
}

fn is_nil(a: &MultiValue, i: usize) -> bool {
    matches!(a.get(i - 1), None | Some(Value::Nil))
}

/// `json_integer_option`: sets from argument `i` when given; returns the setting.
fn int_option(
    a: &MultiValue,
    i: usize,
    s: &mut i32,
    min: i32,
    max: i32,
) -> Result<Value, LibError> {
    if !is_nil(a, i) {
        let v = num::check_integer(a, i)?;
        if !(min as i64 <= v && v <= max as i64) {
            return Err(LibError::Arg(
                1,
                format!("expected integer between {min} and {max}"),
            ));
        }
        *s = v as i32;
    }
    Ok(Value::Number(*s as f64))
}

fn int_cfg(a: &MultiValue, s: &mut i32, min: i32, max: i32) -> LibResult {
    arg_init(a, 1)?;
    Ok(Ret::from_iter([int_option(a, 1, s, min, max)?]))
}

/// `json_enum_option`: a boolean or one of `options` (default `off`/`on`); returns the setting
/// as a boolean when it is off/on, else as its name.
fn enum_option(
    lua: &Lua,
    a: &MultiValue,
    i: usize,
    s: &mut i32,
    options: Option<&[&str]>,
) -> Result<Value, LibError> {
    let options = options.unwrap_or(&["off", "on"]);
    if !is_nil(a, i) {
        if let Some(Value::Boolean(b)) = a.get(i - 1) {
            *s = *b as i32;
        } else {
            let name = num::check_bytes(a, i)?;
            match options.iter().position(|o| o.as_bytes() == name.as_slice()) {
                Some(p) => *s = p as i32,
                None => {
                    let name = String::from_utf8_lossy(&name);
                    let name = name.split('\0').next().unwrap_or("");
                    return Err(LibError::Arg(i as i32, format!("invalid option '{name}'")));
                }
            }
        }
    }
    Ok(if *s == 0 || *s == 1 {
        Value::Boolean(*s == 1)
    } else {
        Value::String(lua.create_string(options[*s as usize]).map_err(lua_err)?)
    })
}
