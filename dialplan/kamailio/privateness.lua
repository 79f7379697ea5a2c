-- Route E.164 calls by ENUM records on Emercoin NVS (Kamailio KEMI, app_lua).
-- Loaded by kamailio-lua.cfg. The same decisions as kamailio.cfg:
--   found      -> the targets of the best NAPTR order, by preference (serial forking)
--   not found  -> FALLBACK_URI, or 404
--   node down  -> FALLBACK_URI, or 503 with Retry-After
-- KSR.privateness.emc_enum_query() returns 1 found, -1 not found, -2 node failure,
-- -3 module error, -4 refused by the on_enum hook (hooks_script, docs/hooks.md).

local FALLBACK_URI = nil -- e.g. "sip:gateway@192.0.2.20"

local function fallback(code, reason)
    if FALLBACK_URI then
        KSR.setdsturi(FALLBACK_URI)
        KSR.tm.t_relay()
        return
    end
    if code == 503 then
        KSR.hdr.append_to_reply("Retry-After: 30\r\n")
    end
    KSR.sl.sl_send_reply(code, reason)
end

function ksr_request_route()
    if KSR.maxfwd.process_maxfwd(10) < 0 then
        KSR.sl.sl_send_reply(483, "Too Many Hops")
        return
    end
    if KSR.siputils.has_totag() > 0 then
        if KSR.rr.loose_route() > 0 or (KSR.is_ACK() and KSR.tm.t_check_trans() > 0) then
            KSR.tm.t_relay()
        elseif not KSR.is_ACK() then
            KSR.sl.sl_send_reply(404, "Not here")
        end
        return
    end
    if KSR.is_CANCEL() then
        if KSR.tm.t_check_trans() > 0 then
            KSR.tm.t_relay()
        end
        return
    end
    KSR.tm.t_check_trans()
    if KSR.is_INVITE() then
        KSR.rr.record_route()
    end

    local rc = KSR.privateness.emc_enum_query()
    if rc == 1 then
        KSR.info("ENUM " .. tostring(KSR.pv.get("$rU")) .. " -> " .. tostring(KSR.pv.get("$ru")) .. " (lua)\n")
        KSR.tm.t_load_contacts()
        KSR.tm.t_next_contacts()
        KSR.tm.t_on_failure("ksr_failure_next_target")
        if KSR.tm.t_relay() < 0 then
            KSR.sl.sl_reply_error()
        end
    elseif rc == -1 then
        fallback(404, "Not in ENUM")
    elseif rc == -4 then
        KSR.sl.sl_send_reply(tonumber(KSR.pv.get("$avp(emc_reject_code)")) or 403, KSR.pv.get("$avp(emc_reject_reason)") or "Rejected")
    else
        KSR.warn("ENUM unavailable (code " .. rc .. "); falling back\n")
        fallback(503, "ENUM temporarily unavailable")
    end
end

-- The next target of the same order group, if the current one failed.
function ksr_failure_next_target()
    if KSR.tm.t_is_canceled() > 0 then
        return
    end
    if KSR.tm.t_next_contacts() > 0 then
        KSR.tm.t_on_failure("ksr_failure_next_target")
        KSR.tm.t_relay()
    end
end
