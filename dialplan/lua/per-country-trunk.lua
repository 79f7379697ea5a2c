-- per-country-trunk.lua: on_trunk(ctx) picks the Skywire trunk for a
-- destination by its country code, falling back to the first trunk. The trunk
-- names are the [[trunk]] names of trunk.toml. See docs/hooks.md.

local BY_COUNTRY = {
  ["+49"] = "berlin",
  ["+33"] = "paris",
  ["+44"] = "london",
}

function on_trunk(ctx)
  for prefix, trunk in pairs(BY_COUNTRY) do
    if ctx.number:sub(1, #prefix) == prefix then
      for _, t in ipairs(ctx.trunks) do
        if t == trunk then return trunk end
      end
    end
  end
  return ctx.trunks[1]
end
