//! Hostile inputs: whatever bytes a script hands the libraries, they answer or raise a Lua
//! error — no panic, no stack overflow, no allocation sized by what the input announces.

use mlua::{Function, Lua, Value};

fn lua() -> Lua {
    let lua = Lua::new();
    vigil_lua::libs::install(&lua).unwrap();
    lua
}

/// A small deterministic generator (the same inputs every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// Bytes biased towards each format's structural bytes.
    fn bytes(&mut self, alphabet: &[u8], len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                if self.next().is_multiple_of(4) {
                    self.next() as u8
                } else {
                    alphabet[self.next() as usize % alphabet.len()]
                }
            })
            .collect()
    }
}

fn probe(lua: &Lua, code: &str) -> Function {
    lua.load(code).eval().unwrap()
}

#[test]
fn random_bytes_never_panic() {
    let lua = lua();
    let msgpack = probe(
        &lua,
        "return function(s) local ok, v = pcall(cmsgpack.unpack, s)
            if ok then pcall(cmsgpack.pack, v) end
            pcall(cmsgpack.unpack_limit, s, 3, 1) return ok end",
    );
    let json = probe(
        &lua,
        "return function(s) local ok, v = pcall(cjson.decode, s)
            if ok then pcall(cjson.encode, v) end return ok end",
    );
    let structs = probe(
        &lua,
        "return function(f, s) pcall(struct.size, f) pcall(struct.pack, f, 1, 2, 'abc', 4)
            return (pcall(struct.unpack, f, s)) end",
    );
    let mut r = Lcg(7);
    for i in 0..3000 {
        let len = (r.next() % 64) as usize;
        let s = r.bytes(
            &[
                0x91, 0x81, 0xdc, 0xdd, 0xde, 0xdf, 0xdb, 0xa3, 0xc0, 0x01, 0xcb,
            ],
            len,
        );
        msgpack
            .call::<bool>(lua.create_string(&s).unwrap())
            .unwrap_or_else(|e| panic!("#{i} {e}"));
        let s = r.bytes(b"[]{}:,\"\\u0123456789eE.-+tnfalsenul ", len);
        json.call::<bool>(lua.create_string(&s).unwrap())
            .unwrap_or_else(|e| panic!("#{i} {e}"));
        let f = r.bytes(b"<>!248xbBhHlLTiIfdsc0 9", len % 12);
        structs
            .call::<bool>((
                lua.create_string(&f).unwrap(),
                lua.create_string(&s).unwrap(),
            ))
            .unwrap_or_else(|e| panic!("#{i} {e}"));
    }
}

#[test]
fn announced_sizes_are_not_allocated() {
    let lua = lua();
    let cases = [
        // 4 GiB string, array and map headers with nothing behind them.
        "return {pcall(cmsgpack.unpack, '\\219\\255\\255\\255\\255')}",
        "return {pcall(cmsgpack.unpack, '\\221\\255\\255\\255\\255')}",
        "return {pcall(cmsgpack.unpack, '\\223\\255\\255\\255\\255')}",
        "return {pcall(cmsgpack.unpack, string.rep('\\221\\255\\255\\255\\255', 3000))}",
        "return {pcall(struct.unpack, 'c2147483647', 'abc')}",
        "return {pcall(struct.pack, 'c2147483647', 'abc')}",
        "return {pcall(struct.pack, '!1073741824 i32', 1)}",
        "return {pcall(bit.tohex, 1, 2^31 - 1)}",
    ];
    for (i, c) in cases.iter().enumerate() {
        let v: Value = lua.load(*c).eval().unwrap_or_else(|e| panic!("#{i} {e}"));
        assert!(matches!(v, Value::Table(_)), "#{i}");
    }
}

#[test]
fn deep_nesting_fails_cleanly() {
    let lua = lua();
    let cases = [
        (
            "return select(2, pcall(cmsgpack.unpack, string.rep('\\145', 1000000)))",
            "stack overflow (in function mp_decode_to_lua_array)",
        ),
        (
            "return select(2, pcall(cmsgpack.unpack, string.rep('\\129\\161k', 1000000)))",
            "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)",
        ),
        (
            "return select(2, pcall(cjson.decode, string.rep('[', 1000000)))",
            "Found too many nested data structures (1001) at character 1001",
        ),
        (
            "local c = cjson.new() c.decode_max_depth(2^31 - 1)
          return select(2, pcall(c.decode, string.rep('{\"a\":', 1000000)))",
            "Found too many nested data structures (4000) at character 19996",
        ),
        (
            "local c = cjson.new() c.encode_max_depth(2^31 - 1) local t = {} local x = t
          for i = 1, 100000 do x.k = {} x = x.k end return select(2, pcall(c.encode, t))",
            "Cannot serialise, excessive nesting (4000)",
        ),
        (
            "local t = {} t[1] = t return select(2, pcall(cjson.encode, t))",
            "Cannot serialise, excessive nesting (1001)",
        ),
    ];
    for (i, (c, want)) in cases.iter().enumerate() {
        let got: String = lua.load(*c).eval().unwrap_or_else(|e| panic!("#{i} {e}"));
        assert_eq!(got, *want, "#{i}");
    }
}
