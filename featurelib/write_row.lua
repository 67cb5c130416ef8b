-- Write one feature row to its hash, atomically, if it is not older than the stored row.
-- The stream contract (docs/STREAM_CONTRACT.md); used by Feast materialization and stream jobs.
--
-- KEYS[1]  features:{entity_type}:{entity_id}:{feature_view}
-- ARGV[1]  event timestamp of the row, integer microseconds since the Unix epoch (UTC)
-- ARGV[2]  created timestamp, integer microseconds since the epoch (0 if unknown)
-- ARGV[3]  expire-at, milliseconds since the epoch (event time + view TTL + grace), 0 for never
-- ARGV[4..] field, value, field, value, ... (a null feature is simply left out)
--
-- Returns 1 when the row was written, 0 when the stored row has a newer event timestamp.
-- Equal timestamps replace the row, so writing the same row twice is idempotent.
local stored = redis.call('HGET', KEYS[1], '_event_ts')
if stored and tonumber(stored) > tonumber(ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '_event_ts', ARGV[1], '_created_ts', ARGV[2], unpack(ARGV, 4))
if tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
end
return 1
