-- The 20-line on_enum of bench/kamailio-module.sh (mode emc_hook) and of
-- tests/src/bin/hook_latency.rs: a prefix table, a blocklist and a pass over
-- the routes, as a least-cost-routing script would do; it keeps the routes.
local BLOCKED = { "+4990", "+44909", "+1900" }
local PREFERRED = { ["127.0.0.1"] = true }
local function starts(s, p) return s:sub(1, #p) == p end
function on_enum(ctx)
  for _, p in ipairs(BLOCKED) do
    if starts(ctx.number, p) then return { reject = 403, reason = "Blocked" } end
  end
  local first, rest = {}, {}
  for _, c in ipairs(ctx.candidates) do
    local host = c.uri:match("@([^:;>]+)")
    if host and PREFERRED[host] then first[#first + 1] = c.uri else rest[#rest + 1] = c.uri end
  end
  for _, u in ipairs(rest) do first[#first + 1] = u end
  if #first == 0 then return nil end
  return first
end
