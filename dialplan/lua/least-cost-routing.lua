-- least-cost-routing.lua: on_enum routes calls to a cheaper gateway by prefix,
-- keeping the ENUM routes as the fallback behind it.
--
-- Load it with Kamailio's modparam("privateness", "hooks_script", ".../least-cost-routing.lua"),
-- Asterisk's privateness.conf [hooks] script = …, or the forwarder's [hooks] (it
-- defines no SMS hook, so SMS are untouched). See docs/hooks.md.

-- Longest prefix first: the gateway that carries that destination cheapest.
local GATEWAYS = {
  { prefix = "+4930", uri = "sip:%s@berlin-gw.example.net" },   -- Berlin local rate
  { prefix = "+49",   uri = "sip:%s@de-gw.example.net" },
  { prefix = "+44",   uri = "sip:%s@uk-gw.example.net" },
}
table.sort(GATEWAYS, function(a, b) return #a.prefix > #b.prefix end)

-- Numbers nobody may call through this PBX (premium rate, for example).
local BLOCKED = { "+4990", "+44909" }

local function starts_with(s, prefix)
  return s:sub(1, #prefix) == prefix
end

function on_enum(ctx)
  for _, p in ipairs(BLOCKED) do
    if starts_with(ctx.number, p) then
      return { reject = 403, reason = "Premium Rate Blocked" }
    end
  end
  for _, gw in ipairs(GATEWAYS) do
    if starts_with(ctx.number, gw.prefix) then
      local routes = { string.format(gw.uri, ctx.number:sub(2)) }
      -- The ENUM routes stay behind the gateway, in their order.
      for _, c in ipairs(ctx.candidates) do
        routes[#routes + 1] = c.uri
      end
      return routes
    end
  end
  return nil -- anything else: ENUM as it is
end
