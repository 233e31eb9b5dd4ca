-- nearchat matcher: every state change of matching, in one script so that each
-- runs atomically in Redis however many chatd nodes call it at once.
--
-- Called as EVALSHA sha 0 op args...; all keys share the {nc} hash tag, so
-- they live in one slot of a Redis Cluster. Key names are K.* (a prelude
-- generated from server/keys/keys.def, which lists what each holds).
--
-- Levels of a pair, narrowest first: 0 same city, 1 nearby (same country,
-- within the nearby radius), 2 same country, 3 anywhere. A waiting guest has
-- a scope (the widest level it accepts) and a stage (the widest level it
-- searches now; widened by its worker's timers). A pair may be proposed when
-- its level is within both scopes and within the stage of either guest.
--
-- Notifications are published to the worker channel of the guest
-- (g:<id>.chan) as JSON: {"t": kind, "g": guestId, ...}.

local SCAN = 64

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function hgetall(key)
  local raw = redis.call('HGETALL', key)
  if #raw == 0 then return nil end
  local h = {}
  for i = 1, #raw, 2 do h[raw[i]] = raw[i + 1] end
  return h
end

local function publish(g, msg)
  local chan = redis.call('HGET', K.guest .. g, 'chan')
  if chan then
    msg.g = g
    redis.call('PUBLISH', chan, cjson.encode(msg))
  end
end

local function coords(p)
  if p.lat and p.lat ~= '' and p.lon and p.lon ~= '' then
    return tonumber(p.lat), tonumber(p.lon)
  end
  return nil
end

local function distance_km(a, b)
  local la1, lo1 = coords(a)
  local la2, lo2 = coords(b)
  if not la1 or not la2 then return nil end
  local r = math.pi / 180
  local dlat, dlon = (la2 - la1) * r, (lo2 - lo1) * r
  local h = math.sin(dlat / 2) ^ 2 + math.cos(la1 * r) * math.cos(la2 * r) * math.sin(dlon / 2) ^ 2
  if h > 1 then h = 1 end
  return 2 * 6371.0088 * math.asin(math.sqrt(h))
end

local function pair_level(a, b, d, nearby_km)
  if a.city ~= '' and a.city == b.city then return 0 end
  local same_cc = a.cc ~= '' and a.cc == b.cc
  if same_cc and d and d <= nearby_km then return 1 end
  if same_cc then return 2 end
  return 3
end

-- The narrowest level this guest's location allows a search to start at.
local function first_stage(p)
  if p.city ~= '' then return 0 end
  if coords(p) and p.cc ~= '' then return 1 end
  if p.cc ~= '' then return 2 end
  return 3
end

-- A scope narrower than what is known of the location widens to the
-- narrowest known one.
local function effective_scope(p, scope)
  if scope == 0 and p.city == '' then scope = 2 end
  if scope <= 2 and p.cc == '' then scope = 3 end
  return scope
end

local function enqueue(g, p, since)
  redis.call('ZADD', K.queue_all, since, g)
  if p.city ~= '' then redis.call('ZADD', K.queue_city .. p.city, since, g) end
  if p.cc ~= '' then redis.call('ZADD', K.queue_country .. p.cc, since, g) end
  local lat, lon = coords(p)
  if lat and math.abs(lat) <= 85.05 then redis.call('GEOADD', K.geo, lon, lat, g) end
end

-- Takes a guest out of the queues (it stays "in" the matcher while a
-- proposal is open, but out of every scan); `w` is its waiting record.
local function unqueue(g, w)
  redis.call('ZREM', K.queue_all, g)
  redis.call('ZREM', K.geo, g)
  if w then
    if w.city and w.city ~= '' then redis.call('ZREM', K.queue_city .. w.city, g) end
    if w.cc and w.cc ~= '' then redis.call('ZREM', K.queue_country .. w.cc, g) end
  end
end

-- Takes a guest out of matching altogether.
local function dequeue(g, w)
  unqueue(g, w)
  redis.call('DEL', K.waiting .. g)
end

-- Back to waiting, at the place it had (its original time).
local function requeue(g)
  local key = K.waiting .. g
  local w = hgetall(key)
  if not w then return false end
  redis.call('HSET', key, 'state', 'waiting', 'pid', '')
  enqueue(g, w, tonumber(w.since))
  return true
end

-- Is this guest gone (its worker stopped refreshing it)? Then clean it up.
local function stale(g)
  if redis.call('EXISTS', K.guest .. g) == 1 then return false end
  local w = hgetall(K.waiting .. g)
  if w and w.pid and w.pid ~= '' then redis.call('DEL', K.proposal .. w.pid) end
  dequeue(g, w)
  return true
end

local function never(a, b, ttl)
  redis.call('SADD', K.never_again .. a, b)
  redis.call('EXPIRE', K.never_again .. a, ttl)
  redis.call('SADD', K.never_again .. b, a)
  redis.call('EXPIRE', K.never_again .. b, ttl)
end

-- cfg: nearby_km, proposal_ms, pid (an id for a proposal this call may make)
local function search(r, cfg)
  local rw = hgetall(K.waiting .. r)
  if not rw or rw.state ~= 'waiting' then return false end
  local rp = hgetall(K.guest .. r)
  if not rp then
    stale(r)
    return false
  end
  local rscope, rstage = tonumber(rw.scope), tonumber(rw.stage)
  local rmax = tonumber(rw.maxkm) or 0
  local seen, cands = {}, {}
  local function add(list)
    for _, c in ipairs(list) do
      if not seen[c] and c ~= r then
        seen[c] = true
        cands[#cands + 1] = c
      end
    end
  end
  if rp.city ~= '' then add(redis.call('ZRANGE', K.queue_city .. rp.city, 0, SCAN - 1)) end
  local lat, lon = coords(rp)
  if lat and math.abs(lat) <= 85.05 and rscope >= 1 then
    local radius = rscope >= 3 and 20040 or cfg.nearby_km
    add(redis.call('GEOSEARCH', K.geo, 'FROMLONLAT', lon, lat, 'BYRADIUS', radius, 'km', 'ASC', 'COUNT', SCAN))
  end
  if rscope >= 2 and rp.cc ~= '' then add(redis.call('ZRANGE', K.queue_country .. rp.cc, 0, SCAN - 1)) end
  if rscope >= 3 then add(redis.call('ZRANGE', K.queue_all, 0, SCAN - 1)) end

  local nv = K.never_again .. r
  local best, best_d, best_since
  for _, c in ipairs(cands) do
    local cw = hgetall(K.waiting .. c)
    if cw and cw.state == 'waiting' and redis.call('SISMEMBER', nv, c) == 0 and not stale(c) then
      local cp = hgetall(K.guest .. c)
      local d = distance_km(rp, cp)
      local l = pair_level(rp, cp, d, cfg.nearby_km)
      local cmax = tonumber(cw.maxkm) or 0
      local ok = l <= rscope and l <= tonumber(cw.scope) and (l <= rstage or l <= tonumber(cw.stage))
      if ok and rmax > 0 and l > 0 and (not d or d > rmax) then ok = false end
      if ok and cmax > 0 and l > 0 and (not d or d > cmax) then ok = false end
      if ok then
        local key_d, since = d or 1e9, tonumber(cw.since)
        if not best or key_d < best_d or (key_d == best_d and since < best_since) then
          best, best_d, best_since = c, key_d, since
        end
      end
    end
  end
  if not best then return false end

  -- propose: the waiting guest picked for the requester hears of it
  local pid = cfg.pid
  local exp = now_ms() + cfg.proposal_ms
  local d = best_d < 1e9 and best_d or nil
  redis.call('HSET', K.proposal .. pid, 'r', r, 't', best, 'exp', exp, 'd', d and tostring(d) or '')
  redis.call('PEXPIRE', K.proposal .. pid, cfg.proposal_ms + 60000)
  redis.call('HSET', K.waiting .. r, 'state', 'proposing', 'pid', pid)
  redis.call('HSET', K.waiting .. best, 'state', 'proposed', 'pid', pid)
  unqueue(r, rw)
  unqueue(best, hgetall(K.waiting .. best))
  publish(best, {t = 'proposal', pid = pid, city = rp.cname, cc = rp.cc,
                 d = d and math.floor(d + 0.5) or cjson.null, ms = cfg.proposal_ms})
  publish(r, {t = 'proposing', pid = pid, ms = cfg.proposal_ms})
  return true
end

-- A proposal ended without a session: the requester goes back to waiting at
-- its old place and searches again.
local function requester_back(r, cfg)
  if requeue(r) then search(r, cfg) end
end

local op = ARGV[1]

-- hello gid ip chan conn city cname cc lat lon ttl_s
-- Registers where a guest is; answers banned, or its live session if any.
if op == 'hello' then
  local g, ip = ARGV[2], ARGV[3]
  if redis.call('EXISTS', K.ban_guest .. g) == 1 or redis.call('EXISTS', K.ban_ip .. ip) == 1 then
    return {'banned'}
  end
  local key = K.guest .. g
  redis.call('HSET', key, 'chan', ARGV[4], 'conn', ARGV[5], 'city', ARGV[6], 'cname', ARGV[7], 'cc', ARGV[8],
             'lat', ARGV[9], 'lon', ARGV[10], 'ip', ip)
  redis.call('EXPIRE', key, tonumber(ARGV[11]))
  local sid = redis.call('GET', K.guest_session .. g)
  if sid then
    local s = hgetall(K.session .. sid)
    if s then
      local me = s.a == g and 'a' or 'b'
      local peer = me == 'a' and 'b' or 'a'
      return {'session', sid, s['alias_' .. peer], s['cname_' .. peer], s['cc_' .. peer], s.d, s.started}
    end
    redis.call('DEL', K.guest_session .. g)
  end
  return {'ok'}
end

local cfg = {nearby_km = 0, proposal_ms = 0, pid = ''}

-- request gid scope maxkm nearby_km proposal_ms pid ip rate_g_n rate_g_s rate_ip_n rate_ip_s
if op == 'request' then
  local g = ARGV[2]
  cfg.nearby_km, cfg.proposal_ms, cfg.pid = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
  local p = hgetall(K.guest .. g)
  if not p then return {'err', 'unavailable'} end
  local now = now_ms()
  -- token buckets, per guest and per IP
  local function bucket(key, n, secs)
    n, secs = tonumber(n), tonumber(secs)
    if n <= 0 or secs <= 0 then return true end
    local b = hgetall(key)
    local tokens, ts = n, now
    if b then
      tokens = math.min(n, tonumber(b.t) + (now - tonumber(b.ts)) * n / (secs * 1000))
    end
    if tokens < 1 then return false end
    redis.call('HSET', key, 't', tostring(tokens - 1), 'ts', ts)
    redis.call('PEXPIRE', key, secs * 1000 * 2)
    return true
  end
  if not bucket(K.rate_guest .. g, ARGV[9], ARGV[10]) or not bucket(K.rate_ip .. ARGV[8], ARGV[11], ARGV[12]) then
    return {'err', 'rate_limited'}
  end
  if redis.call('EXISTS', K.guest_session .. g) == 1 then return {'err', 'already_in_session'} end
  if redis.call('EXISTS', K.waiting .. g) == 1 then return {'err', 'already_queued'} end
  local scope = effective_scope(p, tonumber(ARGV[3]))
  local stage = math.min(first_stage(p), scope)
  redis.call('HSET', K.waiting .. g, 'since', now, 'scope', scope, 'stage', stage, 'maxkm', ARGV[4],
             'state', 'waiting', 'pid', '', 'city', p.city, 'cc', p.cc, 'lat', p.lat, 'lon', p.lon)
  redis.call('EXPIRE', K.waiting .. g, 86400)
  enqueue(g, p, now)
  search(g, cfg)
  return {'ok', tostring(stage), tostring(scope)}
end

-- widen gid stage nearby_km proposal_ms pid
-- Returns the stage now in force and the time waited, or not_waiting.
if op == 'widen' then
  local g = ARGV[2]
  cfg.nearby_km, cfg.proposal_ms, cfg.pid = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
  local w = hgetall(K.waiting .. g)
  if not w then return {'not_waiting'} end
  local stage = math.min(tonumber(ARGV[3]), tonumber(w.scope))
  local waited = now_ms() - tonumber(w.since)
  if stage > tonumber(w.stage) then redis.call('HSET', K.waiting .. g, 'stage', stage) end
  -- told on the guest's channel, so that it comes before any proposal this search makes;
  -- a guest in a proposal hears nothing of it
  if w.state == 'waiting' then publish(g, {t = 'waiting', stage = stage, waited = waited}) end
  search(g, cfg)
  return {'ok', tostring(stage), tostring(waited), w.scope}
end

-- accept gid pid sid alias_of_requester alias_of_target ttl_s nearby_km proposal_ms pid2
if op == 'accept' then
  local g, pid = ARGV[2], ARGV[3]
  cfg.nearby_km, cfg.proposal_ms, cfg.pid = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
  local p = hgetall(K.proposal .. pid)
  if not p or p.t ~= g then return {'err', 'unknown_proposal'} end
  local now = now_ms()
  if p.x == '1' or now > tonumber(p.exp) then return {'err', 'expired'} end
  local r = p.r
  local rw = hgetall(K.waiting .. r)
  if not rw or rw.pid ~= pid or stale(r) then
    redis.call('DEL', K.proposal .. pid)
    return {'err', 'unknown_proposal'}
  end
  local rp, tp = hgetall(K.guest .. r), hgetall(K.guest .. g)
  local sid, ttl = ARGV[4], tonumber(ARGV[7])
  redis.call('HSET', K.session .. sid, 'a', r, 'b', g, 'alias_a', ARGV[5], 'alias_b', ARGV[6],
             'cname_a', rp.cname, 'cc_a', rp.cc, 'cname_b', tp.cname, 'cc_b', tp.cc, 'd', p.d, 'started', now,
             'lat_a', '', 'lat_b', '')
  redis.call('EXPIRE', K.session .. sid, ttl)
  redis.call('SET', K.guest_session .. r, sid, 'EX', ttl)
  redis.call('SET', K.guest_session .. g, sid, 'EX', ttl)
  redis.call('DEL', K.proposal .. pid)
  dequeue(r, rw)
  dequeue(g, hgetall(K.waiting .. g))
  local d = p.d ~= '' and math.floor(tonumber(p.d) + 0.5) or cjson.null
  publish(r, {t = 'session', sid = sid, alias = ARGV[6], city = tp.cname, cc = tp.cc, d = d, started = now})
  publish(g, {t = 'session', sid = sid, alias = ARGV[5], city = rp.cname, cc = rp.cc, d = d, started = now})
  return {'ok', sid, r, rp.cname, rp.cc, tp.cname, tp.cc, tostring(now)}
end

-- decline gid pid ttl_s nearby_km proposal_ms pid2
if op == 'decline' then
  local g, pid = ARGV[2], ARGV[3]
  cfg.nearby_km, cfg.proposal_ms, cfg.pid = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
  local p = hgetall(K.proposal .. pid)
  if not p or p.t ~= g or p.x == '1' then return {'ok'} end
  never(p.r, g, tonumber(ARGV[4]))
  redis.call('DEL', K.proposal .. pid)
  requeue(g)
  requester_back(p.r, cfg)
  cfg.pid = string.sub(cfg.pid, 2) .. 'A'
  search(g, cfg)
  return {'ok'}
end

-- expire pid ttl_s nearby_km proposal_ms pid2
-- The target let the proposal lapse: it leaves the queue; the requester goes back.
if op == 'expire' then
  local pid = ARGV[2]
  cfg.nearby_km, cfg.proposal_ms, cfg.pid = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
  local p = hgetall(K.proposal .. pid)
  if not p or p.x == '1' then return {'gone'} end
  if now_ms() + 50 < tonumber(p.exp) then return {'early'} end
  never(p.r, p.t, tonumber(ARGV[3]))
  -- kept a little while, so that a late accept hears "expired" rather than "unknown"
  redis.call('HSET', K.proposal .. pid, 'x', '1')
  dequeue(p.t, hgetall(K.waiting .. p.t))
  publish(p.t, {t = 'expired', pid = pid})
  requester_back(p.r, cfg)
  return {'ok'}
end

-- cancel gid conn nearby_km proposal_ms pid2 [gone]
-- The guest stops waiting (match:cancel, or its connection `conn` went away:
-- then only if that connection is still the guest's, and `gone` drops its
-- location as well).
if op == 'cancel' then
  local g, conn = ARGV[2], ARGV[3]
  cfg.nearby_km, cfg.proposal_ms, cfg.pid = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
  if conn ~= '' then
    local cur = redis.call('HGET', K.guest .. g, 'conn')
    if cur and cur ~= conn then return {'other_connection'} end
  end
  local w = hgetall(K.waiting .. g)
  if ARGV[7] == 'gone' then redis.call('DEL', K.guest .. g) end
  if not w then return {'ok'} end
  if w.pid ~= '' then
    local p = hgetall(K.proposal .. w.pid)
    redis.call('DEL', K.proposal .. w.pid)
    if p and p.r == g then
      requeue(p.t)
      publish(p.t, {t = 'withdrawn', pid = w.pid})
      dequeue(g, w)
      search(p.t, cfg)
      return {'ok'}
    elseif p then
      dequeue(g, w)
      requester_back(p.r, cfg)
      return {'ok'}
    end
  end
  dequeue(g, w)
  return {'ok'}
end

-- reap me dead_ms max
-- Liveness of workers. Worker `me` (its channel, unique per process) beats:
-- {nc}:workers scores each worker by its last beat (Redis's clock). Each
-- worker keeps {nc}:ng:<channel>, the guests it holds (set by its C side).
-- Of the workers that have not beaten for dead_ms, this takes up to `max`
-- guests, keeping those whose location still points at the dead worker:
-- {status, g1, conn1, g2, conn2, ...}, status 'new' when `me` was not listed
-- (it starts, or it was taken for dead), else 'ok'. The caller cancels each
-- guest with its conn, as its connection closing would have, and its peer
-- hears it went. A dead worker whose set is empty is forgotten.
if op == 'reap' then
  local me, dead_ms, max = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
  local now = now_ms()
  local out = {'ok'}
  if redis.call('ZADD', K.workers, now, me) == 1 then out[1] = 'new' end
  local dead = redis.call('ZRANGEBYSCORE', K.workers, '-inf', now - dead_ms, 'LIMIT', 0, 8)
  for _, chan in ipairs(dead) do
    local set = K.node_guests .. chan
    local room = max - (#out - 1) / 2
    if room <= 0 then break end
    for _, g in ipairs(redis.call('SPOP', set, room)) do
      local loc = redis.call('HMGET', K.guest .. g, 'chan', 'conn')
      if loc[1] == chan and loc[2] then
        out[#out + 1] = g
        out[#out + 1] = loc[2]
      end
    end
    if redis.call('EXISTS', set) == 0 then redis.call('ZREM', K.workers, chan) end
  end
  return out
end

return redis.error_reply('unknown op')
