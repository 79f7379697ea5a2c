-- time-of-day-tariff.lua: tariff(ctx) prices RANDPAY-metered calls by the hour:
-- cheaper at night and at weekends, dearer to mobile numbers. Needs the `os`
-- library for the clock in local time: allow it (Kamailio hooks_allow "os",
-- Asterisk [hooks] allow = os, the forwarder's allow = ["os"]). See docs/hooks.md.
-- A call is priced once, when it starts: one that runs past 20:00 keeps its
-- day rate to the end.

local NIGHT_FROM, NIGHT_TO = 20, 8        -- 20:00 to 08:00 local time
local MOBILE = { "+4915", "+4916", "+4917" }

local function is_mobile(number)
  for _, p in ipairs(MOBILE) do
    if number:sub(1, #p) == p then return true end
  end
  return false
end

function tariff(ctx)
  local t = os.date("*t", math.floor(ness.now()))
  local night = t.hour >= NIGHT_FROM or t.hour < NIGHT_TO
  local weekend = t.wday == 1 or t.wday == 7   -- Sunday, Saturday
  local price
  if is_mobile(ctx.number) then
    price = (night or weekend) and "0.015" or "0.03"
  else
    price = (night or weekend) and "0.005" or "0.01"
  end
  -- risk, interval and grace as configured (ctx.default), the price by the clock.
  return { price = price }
end
