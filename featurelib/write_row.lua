-- Write feature rows to their hashes, each atomically, unless the stored row is newer.
-- The stream contract (docs/STREAM_CONTRACT.md); used by Feast materialization and stream jobs.
--
-- KEYS[i]  features:{entity_type}:{entity_id}:{feature_view} of row i (one row per key)
-- ARGV     for each row, in order:
--            event timestamp of the row, integer microseconds since the Unix epoch (UTC)
--            created timestamp, integer microseconds since the epoch (0 if unknown)
--            expire-at, milliseconds since the epoch (event time + view TTL + grace), 0 for never
--            n, the number of non-null features, followed by n pairs: field, value
--            (a null feature is simply left out)
--
-- Returns one integer per row:
--    1  written;
--    0  the stored row is newer: a later event timestamp, or the same event timestamp and a
--       later created timestamp (otherwise the row is replaced, so writing it twice is idempotent);
--   -1  refused: the row's event timestamp is more than MAX_AHEAD_US ahead of this server's
--       clock (TIME). No writer can pin a value into the future, and a stored row that is that
--       far ahead (written before this rule) counts as absent, so the next write repairs it;
--   -2  refused: the event timestamp is not a number.
-- In Redis Cluster all KEYS of one call must share a hash slot (one row per call always does).
local MAX_AHEAD_US = 60000000
local time = redis.call('TIME')
local latest = tonumber(time[1]) * 1000000 + tonumber(time[2]) + MAX_AHEAD_US
local result = {}
local a = 1
for i, key in ipairs(KEYS) do
  local event_ts, created_ts, expire_at, n = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local first, last = a + 4, a + 3 + 2 * n
  a = last + 1
  local new_event = tonumber(event_ts)
  if not new_event then
    result[i] = -2
  elseif new_event > latest then
    result[i] = -1
  else
    local stored = redis.call('HMGET', key, '_event_ts', '_created_ts')
    local stored_event = tonumber(stored[1])
    if stored_event and stored_event <= latest and (stored_event > new_event
        or (stored_event == new_event and (tonumber(stored[2]) or 0) > tonumber(created_ts))) then
      result[i] = 0
    else
      if stored[1] or stored[2] then
        redis.call('DEL', key)  -- fields the new row leaves out (nulls) must not survive
      end
      redis.call('HSET', key, '_event_ts', event_ts, '_created_ts', created_ts, unpack(ARGV, first, last))
      if tonumber(expire_at) > 0 then
        redis.call('PEXPIREAT', key, expire_at)
      end
      result[i] = 1
    end
  end
end
return result
