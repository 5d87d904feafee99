//! `redis.call`, `redis.pcall` and the API trampolines as C functions: a Rust function cannot
//! raise a plain Lua error from the caller's frame, a C function can (see each function).

/// Where the run's `redis.call` implementation sits in the registry.
pub(crate) const CALL_KEY: &str = "vigil.call";

/// Past this many arguments `redis.call` packs them into one table (see [`call_c`]).
const PACK_OVER: std::ffi::c_int = 64;

pub(crate) unsafe extern "C-unwind" fn redis_call(l: *mut mlua::lua_State) -> std::ffi::c_int {
    unsafe { call_c(l, true) }
}

pub(crate) unsafe extern "C-unwind" fn redis_pcall(l: *mut mlua::lua_State) -> std::ffi::c_int {
    unsafe { call_c(l, false) }
}

/// `redis.call` / `redis.pcall` as C functions, as in Redis: calls the run's implementation
/// (`(raise, args...) -> (failed, value)`) and raises the error table for `redis.call`. Being
/// C functions, they keep the caller's frame even in `return redis.call(...)`, so an error
/// names the user's line.
///
/// # Safety
/// Called by Lua with a valid state; uses two stack slots beyond the arguments (Lua
/// guarantees `LUA_MINSTACK`), and holds no Rust value across `lua_call`/`lua_error`.
unsafe fn call_c(l: *mut mlua::lua_State, raise: bool) -> std::ffi::c_int {
    use mlua::ffi;
    unsafe {
        let mut n = ffi::lua_gettop(l);
        // Many arguments (`unpack` of a big table) travel packed in one table, flagged by an
        // integer instead of the boolean: the implementation, a Rust callback, could not take
        // them all on the Lua stack.
        let packed = n > PACK_OVER;
        if packed {
            ffi::lua_createtable(l, n, 0);
            for i in 1..=n {
                ffi::lua_pushvalue(l, i);
                ffi::lua_rawseti(l, -2, i as _);
            }
            ffi::lua_replace(l, 1);
            ffi::lua_settop(l, 1);
            n = 1;
        }
        ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, c"vigil.call".as_ptr());
        ffi::lua_insert(l, 1);
        if packed {
            ffi::lua_pushinteger(l, raise as ffi::lua_Integer);
        } else {
            ffi::lua_pushboolean(l, raise as std::ffi::c_int);
        }
        ffi::lua_insert(l, 2);
        ffi::lua_call(l, n + 1, 2);
        if raise && ffi::lua_toboolean(l, -2) != 0 {
            ffi::lua_error(l);
        }
        1
    }
}

/// Calls its upvalue with its arguments and returns all its results.
///
/// # Safety
/// Called by Lua with a valid state and one upvalue; holds no Rust value across `lua_call`.
pub(crate) unsafe extern "C-unwind" fn trampoline(l: *mut mlua::lua_State) -> std::ffi::c_int {
    use mlua::ffi;
    unsafe {
        let n = ffi::lua_gettop(l);
        ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
        ffi::lua_insert(l, 1);
        ffi::lua_call(l, n, ffi::LUA_MULTRET);
        ffi::lua_gettop(l)
    }
}
