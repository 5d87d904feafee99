//! The libraries Redis embeds beside Lua's own: `cjson`, `cmsgpack`, `bit`, `struct`.
//!
//! Each library is written in safe Rust over `mlua` values, but raises its errors the way the C
//! originals do, because scripts see the difference: a C function's `luaL_error` prefixes the
//! *caller's* position (`user_script:1: …`), `luaL_argerror` names the function as the caller
//! spelt it (`bad argument #1 to 'tobit'`, or `'?'` under `pcall`), and the error value is a
//! plain string that `pcall` hands back. An `mlua` callback can only raise a userdata, so every
//! library function is a small C closure ([`trampoline`]) around its Rust body; the body returns
//! a [`LibError`] and the closure raises it from its own frame, exactly where C would.

mod bit;
mod cjson;
mod cmsgpack;
mod lstruct;
pub(crate) mod num;
mod readonly;

use std::ffi::c_int;

use mlua::{Function, IntoLuaMulti, Lua, MultiValue, Table, Value, ffi};

pub use readonly::{READONLY_ERROR, guard_raw_access, protect};

/// How a library function fails; raised as the C library would raise it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LibError {
    /// `luaL_argerror(L, n, msg)`: `bad argument #n to 'f' (msg)`.
    Arg(i32, String),
    /// `luaL_error(L, msg)`: the message after the caller's position.
    Msg(String),
    /// An error the Lua core raises from inside a C function (`table index is nil`): no
    /// position.
    Raw(String),
}

/// Lua 5.1's C stack limit (`LUAI_MAXCSTACK`): the C libraries run into it when nesting
/// (cjson, cmsgpack) and when returning many results (struct's `unpack`), so ours stop there too.
const MAXCSTACK: usize = 8000;

/// Results beyond this many go back through a table: an `mlua` callback's own stack frame
/// cannot hold as many values as a C function's (Lua 5.1 caps both at 8000 slots).
const MANY: usize = 4000;

/// What a library function's Rust body returns.
pub(crate) type LibResult = Result<Ret, LibError>;

/// A library function's results.
pub(crate) enum Ret {
    /// Returned as they are.
    Values(MultiValue),
    /// The first `n` elements of a sequence, spread by the C closure: a body that may return
    /// thousands of strings or tables keeps them in one Lua table, because each `mlua` handle
    /// takes a slot of an auxiliary Lua stack that panics past 8000.
    Spilled(Table, usize),
}

impl FromIterator<Value> for Ret {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Self {
        Ret::Values(MultiValue::from_iter(iter))
    }
}

/// Past this many string/table/function arguments a call is refused: `mlua` would need a handle
/// for each, and its handles run out (with a panic) near 8000. Redis has no such limit, but no
/// library function needs that many such arguments.
const MAX_REF_ARGS: usize = 2000;

/// How the Rust side tells the C closure which error to raise.
const KIND_ARG: i32 = 1;
const KIND_MSG: i32 = 2;
const KIND_RAW: i32 = 3;

/// No cap on a function's arguments (see [`lib_fn_capped`]).
pub(crate) const ALL: usize = usize::MAX;

/// Installs Redis' extra libraries as read-only globals of `lua`, and replaces `rawset`,
/// `rawget`, `setmetatable`, `getmetatable`, `next` and `pairs` with versions that honour
/// read-only tables (see [`protect`]). Call once, on a fresh state, before the sandbox's own
/// global protection; other tables Redis makes read-only (`string`, `math`, …) can be
/// wrapped with [`protect`] too. As in Redis, `cjson`'s settings (`encode_max_depth`, …)
/// belong to the state and outlive the script that changes them.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let globals = lua.globals();
    globals.set("bit", readonly::protect(lua, bit::open(lua)?)?)?;
    globals.set("struct", readonly::protect(lua, lstruct::open(lua)?)?)?;
    globals.set("cmsgpack", readonly::protect(lua, cmsgpack::open(lua)?)?)?;
    globals.set("cjson", readonly::protect(lua, cjson::open(lua)?)?)?;
    readonly::guard_raw_access(lua)?;
    Ok(())
}

/// Makes a Lua function of a library body (see the module docs for why it is a C closure).
/// The body reads at most `cap` arguments: extra ones are dropped before the
/// body sees them (as the C function would ignore them), so they cost no `mlua` handles.
pub(crate) fn lib_fn_capped<F>(lua: &Lua, cap: usize, body: F) -> mlua::Result<Function>
where
    F: Fn(&Lua, MultiValue) -> LibResult + Send + 'static,
{
    let raw = lua.create_function(move |lua, args: MultiValue| {
        Ok(match body(lua, args) {
            Ok(Ret::Spilled(t, n)) => (2, n, t).into_lua_multi(lua)?,
            Ok(Ret::Values(vals)) if vals.len() > MANY => {
                let n = vals.len();
                let t = lua.create_sequence_from(vals)?;
                (2, n, t).into_lua_multi(lua)?
            }
            Ok(Ret::Values(mut vals)) => {
                vals.push_front(Value::Boolean(true));
                vals
            }
            Err(LibError::Arg(n, msg)) => (false, KIND_ARG, msg, n).into_lua_multi(lua)?,
            Err(LibError::Msg(msg)) => (false, KIND_MSG, msg).into_lua_multi(lua)?,
            Err(LibError::Raw(msg)) => (false, KIND_RAW, msg).into_lua_multi(lua)?,
        })
    })?;
    // SAFETY: the closure captures the Rust function as its only upvalue, which `trampoline`
    // expects; nothing else touches the stack.
    let cap = cap.min(i32::MAX as usize) as f64;
    unsafe {
        lua.exec_raw::<Function>((raw, cap), |state| {
            ffi::lua_pushcclosure(state, trampoline, 2);
        })
    }
}

/// Calls the Rust body held in upvalue 1 and returns its results, or raises its error from this
/// C frame so that position and function name are those a C library would report.
unsafe extern "C-unwind" fn trampoline(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with upvalue 1 set by `lib_fn`.
    unsafe {
        let cap = ffi::lua_tointeger(state, ffi::lua_upvalueindex(2)) as c_int;
        if ffi::lua_gettop(state) > cap {
            ffi::lua_settop(state, cap);
        }
        let nargs = ffi::lua_gettop(state);
        if nargs as usize > MAX_REF_ARGS {
            let refs = (1..=nargs)
                .filter(|&i| {
                    !matches!(
                        ffi::lua_type(state, i),
                        ffi::LUA_TNIL
                            | ffi::LUA_TBOOLEAN
                            | ffi::LUA_TNUMBER
                            | ffi::LUA_TLIGHTUSERDATA
                    )
                })
                .count();
            if refs > MAX_REF_ARGS {
                ffi::luaL_error(state, c"too many arguments".as_ptr());
            }
        }
        ffi::luaL_checkstack(state, 3, std::ptr::null());
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
        ffi::lua_insert(state, 1);
        ffi::lua_call(state, nargs, ffi::LUA_MULTRET);
        let top = ffi::lua_gettop(state);
        if ffi::lua_type(state, 1) == ffi::LUA_TNUMBER {
            // Many results, in the table at 3: spread them on this (C-sized) frame.
            let n = ffi::lua_tointeger(state, 2) as c_int;
            ffi::lua_replace(state, 1);
            ffi::lua_settop(state, 1);
            // `lua_checkstack` itself: mlua's `luaL_checkstack` asks for 20 slots more.
            if ffi::lua_checkstack(state, n) == 0 {
                ffi::lua_pushstring(state, c"stack overflow (too many results)".as_ptr());
                ffi::lua_error(state);
            }
            for i in 1..=n {
                ffi::lua_rawgeti(state, 1, i as _);
            }
            return n;
        }
        if ffi::lua_toboolean(state, 1) != 0 {
            return top - 1;
        }
        // No Rust value needing a destructor is alive from here on: raising unwinds with longjmp.
        let kind = ffi::lua_tointeger(state, 2) as i32;
        if kind == KIND_ARG {
            let narg = ffi::lua_tointeger(state, 4) as c_int;
            ffi::luaL_argerror(state, narg, ffi::lua_tostring(state, 3));
        }
        if kind == KIND_RAW {
            ffi::lua_settop(state, 3);
            ffi::lua_error(state);
        }
        ffi::luaL_where(state, 1);
        ffi::lua_pushvalue(state, 3);
        ffi::lua_concat(state, 2);
        ffi::lua_error(state)
    }
}

/// A library function's Rust body.
pub(crate) type Body = fn(&Lua, MultiValue) -> LibResult;

/// Sets `name = body` in `t` for each library function, with its argument cap.
pub(crate) fn set_fns(lua: &Lua, t: &Table, fns: &[(&str, usize, Body)]) -> mlua::Result<()> {
    for &(name, cap, f) in fns {
        t.raw_set(name, lib_fn_capped(lua, cap, f)?)?;
    }
    Ok(())
}
