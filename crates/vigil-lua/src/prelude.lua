-- Vigil's Lua prelude: the error handler, the runner and the `redis` API written in Lua.
-- Runs once per Lua state with (host, debug, kind); returns what the engine keeps.
local host, dbg, kind = ...
local G = _G
local error, type, tostring, select, rawget, setmetatable, xpcall, pairs =
    error, type, tostring, select, rawget, setmetatable, xpcall, pairs

-- Error handler: a string error becomes {err = 'ERR ' .. msg}; the position is the user's
-- code that raised it (C functions and this prelude are skipped), as Redis reports it.
local function handler(err)
  local lvl, info = 2, nil
  while true do
    info = dbg.getinfo(lvl, 'Sl')
    if not info then break end
    if info.what ~= 'C' and info.source ~= '=vigil' then break end
    lvl = lvl + 1
  end
  if type(err) ~= 'table' then
    err = {err = 'ERR ' .. tostring(err)}
  end
  if info then
    err.source = info.source
    err.line = info.currentline
  end
  return err
end

local function run(f, a, b)
  return xpcall(function() return f(a, b) end, handler)
end

local function raise(msg)
  error({err = 'ERR ' .. msg})
end

local redis = {}
-- C functions (see engine.rs): a Lua wrapper called as `return redis.call(...)` would be a
-- tail call, and the error's position would be lost.
redis.call = host.c_call
redis.pcall = host.c_pcall
redis.sha1hex = function(...)
  if select('#', ...) ~= 1 then error('wrong number of arguments') end
  return host.sha1hex(tostring((...)))
end
-- "-CODE msg" keeps its code, "msg" gets ERR (Redis' luaPushErrorBuff).
redis.error_reply = function(...)
  local msg = ...
  if select('#', ...) ~= 1 or type(msg) ~= 'string' then
    raise('wrong number or type of arguments')
  end
  if msg:sub(1, 1) ~= '-' then msg = '-' .. msg end
  local sp = msg:find(' ', 1, true)
  local code, text
  if sp then
    code, text = msg:sub(2, sp - 1), msg:sub(sp + 1)
  else
    code, text = 'ERR', msg:sub(2)
  end
  text = text:gsub('[\r\n]+$', '')
  return {err = code .. ' ' .. text}
end
redis.status_reply = function(...)
  local msg = ...
  if select('#', ...) ~= 1 or type(msg) ~= 'string' then
    raise('wrong number or type of arguments')
  end
  return {ok = msg}
end
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.log = function(...)
  local n = select('#', ...)
  if n < 2 then raise('redis.log() requires two arguments or more.') end
  local level = ...
  if type(level) ~= 'number' then raise('First argument must be a number (log level).') end
  if level < 0 or level > 3 then raise('Invalid debug level.') end
  local parts = {}
  for i = 2, n do parts[#parts + 1] = tostring((select(i, ...))) end
  host.log(level, table.concat(parts, ' '))
end
redis.setresp = function(...)
  if select('#', ...) ~= 1 then raise('redis.setresp() requires one argument.') end
  local v = ...
  if v ~= 2 and v ~= 3 then raise('RESP version must be 2 or 3.') end
  host.setresp(v)
end
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
-- Scripts always replicate by their effects: the flags are checked and otherwise ignored.
redis.set_repl = function(...)
  if select('#', ...) ~= 1 then raise('redis.set_repl() requires one argument.') end
  local f = ...
  if type(f) ~= 'number' or f < 0 or f > 3 then
    raise('Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.')
  end
end
redis.replicate_commands = function() return true end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.acl_check_cmd = function(...)
  if select('#', ...) < 1 then
    raise('Please specify at least one argument for this redis lib call')
  end
  local ok, why = host.acl_check(...)
  if ok == nil then
    error({err = why})
  end
  return ok
end
redis.REDIS_VERSION = host.version
redis.REDIS_VERSION_NUM = host.version_num

-- Reading a missing name and writing any name are errors, worded as Redis words them.
local function protect(t, name)
  return setmetatable(t, {
    __index = function(_, k)
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end,
    __newindex = function() error('Attempt to modify a readonly table', 2) end,
    __metatable = false,
  })
end

-- FUNCTION LOAD's view of `redis`: only what a library may use while it registers.
local loading = {
  register_function = function(...)
    local e = host.register(...)
    if e then error({err = e}) end
  end,
  log = redis.log,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REDIS_VERSION = redis.REDIS_VERSION, REDIS_VERSION_NUM = redis.REDIS_VERSION_NUM,
}
protect(loading)
-- Scripts see the API through a proxy: missing names read as nil, every write is refused.
local api = redis
redis = setmetatable({}, {
  __index = api,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  __metatable = false,
})

G.redis = redis
G.debug = nil
G.loadfile = nil
G.dofile = nil
-- Not in Redis 7.0's sandbox.
G.print, G.getfenv, G.setfenv, G.newproxy = nil, nil, nil, nil
-- A library's code sees `redis` as `loading` while it loads, then the full API.
local current_redis = redis
local libenv = setmetatable({}, {
  __index = function(_, k)
    if k == 'redis' then return current_redis end
    local v = rawget(G, k)
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  __metatable = false,
})
local function set_loading(on)
  current_redis = on and loading or redis
end
protect(G)
return run, libenv, set_loading, api
