//! The libraries Redis embeds beside Lua's own: `cjson`, `cmsgpack`, `bit`, `struct`.

use mlua::Lua;

/// Installs Redis' extra libraries as globals of `lua`.
pub fn install(_lua: &Lua) -> mlua::Result<()> {
    Ok(())
}
