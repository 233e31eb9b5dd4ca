-- nearchat chat: the per-session state that every node shares, changed
-- atomically: message numbering (seq) with idempotent re-sends, delivery
-- status, and the end of a session. Called as EVALSHA sha 0 op args...
-- Keys share the {nc} hash tag with the matcher's, which made the session;
-- their names are K.* (a prelude generated from server/keys/keys.def, which
-- lists what each holds): K.session, K.guest_session, K.seq, K.messages
-- ("<sender>:<id>" = "<seq>:<ts>:<st>", st pending, queued or delivered),
-- K.never_again, and K.wal, the history's write-ahead log (a stream of
-- delivered messages, one field m = "sid|seq|id|from|ts|dts|text", chat.h,
-- read by the history writers of every node through the consumer group
-- "hist", trimmed once stored).
-- Notifications go to the worker channel of a guest (g:<id>.chan), as JSON.


local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function publish(g, msg)
  local chan = redis.call('HGET', K.guest .. g, 'chan')
  if chan then
    msg.g = g
    redis.call('PUBLISH', chan, cjson.encode(msg))
    return true
  end
  return false
end

-- The other guest of session `sid` for guest `g`, or nil when g is not in it.
local function peer_of(sid, g)
  if redis.call('GET', K.guest_session .. g) ~= sid then return nil end
  local a, b = unpack(redis.call('HMGET', K.session .. sid, 'a', 'b'))
  if a == g then return b end
  if b == g then return a end
  return nil
end

local op = ARGV[1]

-- A session's messages live in one hash, {nc}:cm:<sid>, a field per message,
-- "<sender>:<id>" (a guest id has no ':') = "<seq>:<ts>:<st>". One key per
-- message made Redis spend a quarter of its time finding and rehashing keys
-- at 20,000 msgs/s. The hash expires ttl_s after the session's last message.
local HASH_TABLE_PAD = string.rep('~', 65)
local function msg_key(sid) return K.messages .. sid end
local function msg_field(sender, id) return sender .. ':' .. id end
-- seq, ts, st of a record, or nil
local function msg_parse(v)
  if not v then return nil end
  return string.match(v, '^(%d+):(%d+):(%a+)$')
end

-- send sid sender id ttl_s ts_ms : ts is the sending node's clock (seq orders, ts is shown)
-- New: {'new', seq, ts, peer, peer_chan}; a re-send: {'dup', seq, ts, st, peer, peer_chan}.
-- Every message runs this: numbers stay strings as they came (Lua formats
-- its numbers with printf), and seq goes back as an integer reply.
if op == 'send' then
  local sid, g, id, ttl, ts = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
  local peer = peer_of(sid, g)
  if not peer then return {'err', 'not_in_session'} end
  local chan = redis.call('HGET', K.guest .. peer, 'chan') or ''
  local key, field = msg_key(sid), msg_field(g, id)
  local seq0, ts0, st0 = msg_parse(redis.call('HGET', key, field))
  if seq0 then return {'dup', seq0, ts0, st0, peer, chan} end
  local seqkey = K.seq .. sid
  local seq = redis.call('INCR', seqkey)
  redis.call('EXPIRE', seqkey, ttl)
  if seq == 1 then
    -- A value longer than hash-max-listpack-value (64) makes the hash a hash
    -- table from its first message: a listpack is searched entry by entry, and
    -- at 20,000 msgs/s that search became a tenth of Redis's time.
    redis.call('HSET', key, field, seq .. ':' .. ts .. ':pending', '~', HASH_TABLE_PAD)
  else
    redis.call('HSET', key, field, seq .. ':' .. ts .. ':pending')
  end
  redis.call('EXPIRE', key, ttl)
  return {'new', seq, ts, peer, chan}
end

-- status sid sender id st : pending -> queued -> delivered, never back
if op == 'status' then
  local key, field = msg_key(ARGV[2]), msg_field(ARGV[3], ARGV[4])
  local seq, ts, cur = msg_parse(redis.call('HGET', key, field))
  if not seq then return {'gone'} end
  if cur == 'delivered' or (cur == 'queued' and ARGV[5] == 'pending') then return {'ok', cur} end
  redis.call('HSET', key, field, seq .. ':' .. ts .. ':' .. ARGV[5])
  return {'ok', ARGV[5]}
end

-- state sid sender id : the status alone, read-only ({'gone'} once it expired)
if op == 'state' then
  local _, _, st = msg_parse(redis.call('HGET', msg_key(ARGV[2]), msg_field(ARGV[3], ARGV[4])))
  if not st then return {'gone'} end
  return {'ok', st}
end

-- delivered sid sender id seq ts dts text quiet : the recipient's client acked.
-- The receipt and the message's entry in the history's write-ahead log are
-- one atomic step: a message acked "delivered" reaches the history even if
-- the node that took the receipt dies the next instant. Unless quiet (a
-- worker of the sender's node tells it directly: chat.c), the sender's
-- worker hears of it. Returns {'ok', was} ('delivered': a repeat, already
-- logged) or {'gone'} once the record expired (logged all the same).
if op == 'delivered' then
  local sid, sender, id, seq, ts = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
  local key, field = msg_key(sid), msg_field(sender, id)
  local cur, cts, was = msg_parse(redis.call('HGET', key, field))
  if was == 'delivered' then return {'ok', was} end
  redis.call('XADD', K.wal, '*', 'm', table.concat({sid, seq, id, sender, ts, ARGV[7], ARGV[8]}, '|'))
  if not cur then return {'gone'} end
  redis.call('HSET', key, field, cur .. ':' .. cts .. ':delivered')
  if ARGV[9] ~= '1' then publish(sender, {t = 'delivered', sid = sid, id = id, seq = tonumber(cur)}) end
  return {'ok', was}
end

-- relay sid from : typing and read marks; the caller sends them to the peer's channel
-- (a note between the workers of one node keeps its place behind the receipts).
if op == 'relay' then
  local sid, g = ARGV[2], ARGV[3]
  local peer = peer_of(sid, g)
  if not peer then return {'err', 'not_in_session'} end
  return {'ok', peer, redis.call('HGET', K.guest .. peer, 'chan') or ''}
end

-- end sid g reason ttl_s : leave, report (never again), expiry; both sides hear user-left
if op == 'end' then
  local sid, g, reason, ttl = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
  local peer = peer_of(sid, g)
  if not peer then return {'err', 'not_in_session'} end
  redis.call('DEL', K.guest_session .. g, K.guest_session .. peer)
  redis.call('HSET', K.session .. sid, 'ended', now_ms(), 'reason', reason)
  if reason == 'reported' then
    redis.call('SADD', K.never_again .. g, peer)
    redis.call('EXPIRE', K.never_again .. g, ttl)
    redis.call('SADD', K.never_again .. peer, g)
    redis.call('EXPIRE', K.never_again .. peer, ttl)
  end
  publish(peer, {t = 'left', sid = sid, reason = reason})
  if reason == 'expired' then publish(g, {t = 'left', sid = sid, reason = reason}) end
  return {'ok', peer}
end

-- presence g online : tells the peer of g's live session that g came or went
if op == 'presence' then
  local g = ARGV[2]
  local sid = redis.call('GET', K.guest_session .. g)
  if not sid then return {'none'} end
  local peer = peer_of(sid, g)
  if not peer then return {'none'} end
  publish(peer, {t = 'peer', sid = sid, online = ARGV[3] == '1'})
  return {'ok', sid}
end

-- notify g json : a notification for guest g's worker, wherever it is
if op == 'notify' then
  publish(ARGV[2], cjson.decode(ARGV[3]))
  return {'ok'}
end

return redis.error_reply('unknown op')
