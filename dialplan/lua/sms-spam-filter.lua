-- sms-spam-filter.lua: on_sms(msg) drops spam before it is sealed for the
-- renter, tags messages from banks, and sends one SIM's messages to a second
-- renter. Dropped messages stay in the spool, marked dropped with the reason.
-- Reload the forwarder's copy with SIGHUP. See docs/hooks.md.

local SPAM_WORDS = { "you have won", "claim your prize", "crypto giveaway", "click here" }
local BLOCKED_SENDERS = { ["+4915112345678"] = true }
local BANKS = { "SPARKASSE", "DKB", "N26" }

function on_sms(msg)
  if BLOCKED_SENDERS[msg.from] then
    return { drop = true, reason = "blocked sender " .. msg.from }
  end
  local text = msg.text:lower()
  for _, w in ipairs(SPAM_WORDS) do
    if text:find(w, 1, true) then
      return { drop = true, reason = "spam: " .. w }
    end
  end
  for _, b in ipairs(BANKS) do
    if msg.from:upper() == b then
      return { tags = { "bank", "2fa" } }
    end
  end
  if msg.phone_id == "sim-shared" and msg.text:match("^FOR BOB") then
    return { renter = "bob", tags = { "forwarded" } }
  end
  return nil -- deliver as usual
end
