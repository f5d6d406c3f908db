"""The Lua scripts RedisStore's fleet block runs: each keeps an instance's record, its indexes,
the live counts per (channel, release) and the change feed consistent in one atomic step.

Every key a script touches is under the `{fleet}` hash tag: KEYS[1] is the tag's prefix
(``deployd:{fleet}:``) and the scripts name the per-channel and per-customer keys from it, so they
all live in one Redis Cluster slot.
"""

from __future__ import annotations

# Helpers every script starts with.
_COMMON = """
local p = KEYS[1]
local function val(x) if x == nil or x == cjson.null then return nil end return x end
local function running(r) return val(r.reported) or val(r.served) end
local function count(r, delta)
  local release = running(r)
  if release == nil then return end
  local key = p .. 'counts:' .. r.channel
  if redis.call('HINCRBY', key, release, delta) <= 0 then redis.call('HDEL', key, release) end
  local index = p .. 'release:' .. r.channel .. ':' .. release
  if delta > 0 then redis.call('ZADD', index, r.last_seen, r.key)
  else redis.call('ZREM', index, r.key) end
end
local function feed(r, removed, cap)
  redis.call('XADD', p .. 'feed', 'MAXLEN', '~', cap, '*',
    'k', r.key, 's', r.subject, 'v', val(r.served) or '', 'r', val(r.reported) or '',
    't', tostring(r.last_seen), 'x', removed and '1' or '0')
end
local function unindex(r)
  redis.call('ZREM', p .. 'seen', r.key)
  redis.call('ZREM', p .. 'channel:' .. r.channel, r.key)
  redis.call('ZREM', p .. 'customer:' .. r.subject, r.key)
end
local function store(r, cap)
  redis.call('HSET', p .. 'instances', r.key, cjson.encode(r))
  redis.call('ZADD', p .. 'seen', r.last_seen, r.key)
  redis.call('ZADD', p .. 'channel:' .. r.channel, r.last_seen, r.key)
  redis.call('ZADD', p .. 'customer:' .. r.subject, r.last_seen, r.key)
  redis.call('SADD', p .. 'channels', r.channel)
  count(r, 1)
  feed(r, false, cap)
end
"""

# ARGV: feed cap, then a JSON check-in and the license's maxInstances ('' for none) per check-in.
# Returns {new keys, refused keys}.
CHECK_IN = (
    _COMMON
    + """
local cap = tonumber(ARGV[1])
local new, refused = {}, {}
for i = 2, #ARGV, 2 do
  local c = cjson.decode(ARGV[i])
  local raw = redis.call('HGET', p .. 'instances', c.key)
  local r
  if raw then
    r = cjson.decode(raw)
    count(r, -1)
    if r.channel ~= c.channel then redis.call('ZREM', p .. 'channel:' .. r.channel, r.key) end
    r.last_seen = math.max(r.last_seen, c.seen)
  elseif ARGV[i + 1] ~= '' and
      redis.call('ZCARD', p .. 'customer:' .. c.subject) >= tonumber(ARGV[i + 1]) then
    table.insert(refused, c.key)
  else
    r = {key = c.key, first_seen = c.seen, last_seen = c.seen}
    table.insert(new, c.key)
  end
  if r then
    r.subject, r.agent_id, r.channel, r.served = c.subject, c.agent_id, c.channel, c.served
    r.agent_version, r.kubernetes_version = c.agent_version, c.kubernetes_version
    r.user_agent = c.user_agent
    store(r, cap)
  end
end
return {new, refused}
"""
)

# ARGV: feed cap, then instance key and reported release pairs. Returns how many were known.
REPORTED = (
    _COMMON
    + """
local cap = tonumber(ARGV[1])
local known = 0
for i = 2, #ARGV, 2 do
  local raw = redis.call('HGET', p .. 'instances', ARGV[i])
  if raw then
    local r = cjson.decode(raw)
    known = known + 1
    count(r, -1)
    r.reported = ARGV[i + 1]
    store(r, cap)
  end
end
return known
"""
)

# ARGV: feed cap, cutoff (last seen before it expires), most to remove. Returns how many went.
EXPIRE = (
    _COMMON
    + """
local cap = tonumber(ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', p .. 'seen', '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[3])
for _, key in ipairs(gone) do
  local raw = redis.call('HGET', p .. 'instances', key)
  if raw then
    local r = cjson.decode(raw)
    redis.call('HDEL', p .. 'instances', key)
    unindex(r)
    count(r, -1)
    feed(r, true, cap)
  else
    redis.call('ZREM', p .. 'seen', key)
  end
end
return #gone
"""
)

# ARGV: hour number, hours to keep. Writes each channel's counts as that hour's point, once
# (the first worker to ask wins). Returns 1 when it wrote.
SNAPSHOT = (
    _COMMON
    + """
local hour, keep = tonumber(ARGV[1]), tonumber(ARGV[2])
if redis.call('SET', p .. 'adoption-hour:' .. hour, '1', 'NX', 'EX', keep * 3600) == false then
  return 0
end
for _, channel in ipairs(redis.call('SMEMBERS', p .. 'channels')) do
  local flat = redis.call('HGETALL', p .. 'counts:' .. channel)
  local counts = {}
  for i = 1, #flat, 2 do counts[flat[i]] = tonumber(flat[i + 1]) end
  local key = p .. 'adoption:' .. channel
  if #flat > 0 then redis.call('HSET', key, hour, cjson.encode(counts))
  else redis.call('HSET', key, hour, '{}') end
  for _, h in ipairs(redis.call('HKEYS', key)) do
    if tonumber(h) <= hour - keep then redis.call('HDEL', key, h) end
  end
end
return 1
"""
)
