//! RANDPAY metering in ness-core against the devnet's wallets (docs/randpay.md):
//! the payee's challenges and the payer's tickets for a call, interval by
//! interval, through the header values the PBXes exchange, with both ledgers;
//! replayed and forged tickets; a payee node restart; and, over many simulated
//! tickets, a mean payment equal to the tariff.

use std::path::Path;
use std::time::Duration;

use ness_core::nvs::{Credentials, NodeConfig, NvsClient};
use ness_core::randpay::chap::{ChallengeHeader, TicketHeader};
use ness_core::randpay::ledger::Role;
use ness_core::randpay::meter::TicketVerdict;
use ness_core::randpay::node::{self, AcceptError};
use ness_core::randpay::{Amount, Ledger, MeterState, PayeeMeter, PayerPolicy, Tariff, Ticket};
use ness_tests::{Proc, addr_after, bin};
use serde_json::json;

const USER: &str = "rp";
const PASSWORD: &str = "rp-password";

fn devnet(listen: &str, datadir: &Path) -> (Proc, String) {
    let mut p = Proc::start(
        bin("ness-devnet"),
        &["--listen", listen, "--rpcuser", USER, "--automine", "--datadir", &datadir.to_string_lossy()],
        &[("NESS_DEVNET_RPCPASSWORD", PASSWORD)],
    );
    let url = format!("http://{}/", addr_after(&p.wait_for("JSON-RPC on", Duration::from_secs(20)), "JSON-RPC on"));
    (p, url)
}

fn client(url: &str, wallet: Option<&str>) -> NvsClient {
    let cfg = NodeConfig::new(url, Credentials::UserPassword { user: USER.into(), password: PASSWORD.into() })
        .with_timeout(Duration::from_secs(2))
        .with_wallet(wallet.map(str::to_owned));
    NvsClient::new(&cfg).unwrap()
}

/// Wallets "payee" and "payer" (as on one node with several wallets, each call
/// names its wallet); the payer is funded by mining.
async fn wallets(url: &str) -> (NvsClient, NvsClient) {
    let node = client(url, None);
    for w in ["payee", "payer"] {
        // After a node restart the wallets exist already.
        let _ = node.call("createwallet", vec![json!(w)]).await;
    }
    let payee = client(url, Some("payee"));
    let payer = client(url, Some("payer"));
    payer.call("generate", vec![json!(101)]).await.unwrap();
    (payee, payer)
}

fn policy() -> PayerPolicy {
    PayerPolicy { max_price_per_minute: Amount::parse("0.02").unwrap(), max_risk: 1000, max_ticket: Amount::parse("5").unwrap() }
}

/// The payee's side of one interval: a challenge as the header value it sends.
async fn challenge(payee: &NvsClient, ledger: &Ledger, meter: &mut PayeeMeter, call: &str, seq: u32) -> String {
    let t = meter.tariff.clone();
    let chap = node::mkchap(payee, t.ticket_amount(), t.risk, Duration::from_secs(u64::from(t.interval_secs + t.grace_secs)))
        .await
        .unwrap();
    ledger.challenge(call, seq, &chap).unwrap();
    meter.challenge_issued(seq);
    ChallengeHeader { seq, chap, interval_secs: t.interval_secs, grace_secs: t.grace_secs, price_per_minute: t.price_per_minute }
        .to_string()
}

/// The payer's side: check the challenge, mint (or reuse) the ticket, answer with its header value.
async fn pay(payer: &NvsClient, ledger: &Ledger, call: &str, header: &str) -> String {
    let h = ChallengeHeader::parse(header).unwrap();
    policy().check(&h).unwrap();
    let ticket = match ledger.ticket_for(call, h.seq, &h.chap).unwrap() {
        Some(t) => t,
        None => {
            let t = node::mktx(payer, &h.chap, Duration::from_secs(u64::from(h.interval_secs + h.grace_secs))).await.unwrap();
            ledger.ticket(call, h.seq, &h.chap, &t).unwrap();
            t
        }
    };
    TicketHeader { seq: h.seq, ticket }.to_string()
}

/// The payee judges a ticket header value.
async fn redeem(payee: &NvsClient, ledger: &Ledger, meter: &mut PayeeMeter, call: &str, header: &str) -> Result<TicketVerdict, AcceptError> {
    let h = TicketHeader::parse(header).unwrap();
    let chap = ledger.challenge_for(call, h.seq).unwrap().expect("a ticket for a challenge we issued");
    ledger.ticket(call, h.seq, &chap, &h.ticket).unwrap();
    match node::accept(payee, &h.ticket).await {
        Ok(acc) => {
            let verdict = meter.ticket(h.seq, &acc);
            if verdict == TicketVerdict::Paid {
                ledger.outcome(call, h.seq, &acc).unwrap();
            }
            Ok(verdict)
        }
        Err(e) => {
            ledger.refused(call, h.seq, &e.to_string()).unwrap();
            Err(e)
        }
    }
}

#[tokio::test]
async fn tickets_pay_interval_by_interval_and_replays_and_forgeries_pay_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, url) = devnet("127.0.0.1:0", &dir.path().join("devnet"));
    let (payee, payer) = wallets(&url).await;
    let payee_ledger = Ledger::open(&dir.path().join("payee.db")).unwrap();
    let payer_ledger = Ledger::open(&dir.path().join("payer.db")).unwrap();
    // 0.01 EMC/min, one ticket a minute at risk 4: a winning ticket pays 0.04.
    let tariff = Tariff::new("+49", "0.01", 4, 60, 10).unwrap();
    let call = "a84b4c76e66710@payer.example";
    payee_ledger.begin_call(call, Role::Payee, "+4930123456", &tariff).unwrap();
    payer_ledger.begin_call(call, Role::Payer, "+4930123456", &tariff).unwrap();
    let mut meter = PayeeMeter::new(tariff.clone());
    let balance = |c: &NvsClient| {
        let c = c.clone();
        async move { Amount::parse(&c.call("getbalance", vec![]).await.unwrap().to_string()).unwrap() }
    };
    let payer_before = balance(&payer).await;

    // Three intervals: 402 + retried INVITE, then two in-dialog INFO exchanges.
    let mut tickets = Vec::new();
    for seq in 0..3 {
        let at = meter.challenge_time(seq);
        assert_eq!(meter.challenge_due(at), Some(seq));
        let ch = challenge(&payee, &payee_ledger, &mut meter, call, seq).await;
        let tk = pay(&payer, &payer_ledger, call, &ch).await;
        // The INFO (or 402) arrives twice: the payer answers with the same ticket.
        assert_eq!(pay(&payer, &payer_ledger, call, &ch).await, tk);
        assert_eq!(redeem(&payee, &payee_ledger, &mut meter, call, &tk).await.unwrap(), TicketVerdict::Paid);
        tickets.push(tk);
    }
    assert_eq!(meter.state(Duration::from_secs(150)), MeterState::Paid { until: Duration::from_secs(180) });
    assert_eq!(meter.state(Duration::from_secs(185)), MeterState::Due { seq: 3, deadline: Duration::from_secs(190) });

    // A replayed ticket and a forged one pay nothing; the deadline stands.
    let replay = redeem(&payee, &payee_ledger, &mut meter, call, &tickets[1]).await;
    assert!(matches!(replay, Err(AcceptError::UnknownChallenge | AcceptError::Replay)), "{replay:?}");
    let forged = TicketHeader { seq: 3, ticket: Ticket::parse(&"ab".repeat(40)).unwrap() }.to_string();
    challenge(&payee, &payee_ledger, &mut meter, call, 3).await;
    assert!(matches!(redeem(&payee, &payee_ledger, &mut meter, call, &forged).await, Err(AcceptError::Invalid(_))));
    assert_eq!(meter.state(Duration::from_secs(190)), MeterState::Late { seq: 3 });
    payee_ledger.end_call(call, "unpaid").unwrap();

    // Both ledgers: three intervals; what moved equals the payee's wins.
    let payee_sum = payee_ledger.call(call).unwrap();
    let payer_sum = payer_ledger.call(call).unwrap();
    assert_eq!((payee_sum.tickets, payer_sum.tickets), (3, 3), "{payee_sum:?} {payer_sum:?}");
    assert_eq!(payee_sum.expected_value, Amount(30_000));
    assert_eq!(payee_sum.end_reason.as_deref(), Some("unpaid"));
    assert_eq!(payee_sum.won_amount, Amount(i64::from(payee_sum.won) * tariff.ticket_amount().0));
    let payer_after = balance(&payer).await;
    let moved = payer_before.0 - payer_after.0;
    // The payer's balance fell by exactly the winning tickets.
    assert_eq!(Amount(moved), payee_sum.won_amount, "payer paid {moved}, payee won {:?}", payee_sum.won_amount);
}

#[tokio::test]
async fn a_payee_node_restart_reissues_the_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let (mut node1, url) = devnet(&listen, &dir.path().join("devnet"));
    let (payee, payer) = wallets(&url).await;
    let ledger = Ledger::open(&dir.path().join("payee.db")).unwrap();
    let payer_ledger = Ledger::open(&dir.path().join("payer.db")).unwrap();
    let tariff = Tariff::new("+", "0.01", 2, 30, 5).unwrap();
    let call = "restart-call";
    ledger.begin_call(call, Role::Payee, "+15551234567", &tariff).unwrap();
    let mut meter = PayeeMeter::new(tariff);
    let ch = challenge(&payee, &ledger, &mut meter, call, 0).await;
    let tk = pay(&payer, &payer_ledger, call, &ch).await;

    // The node restarts between challenge and ticket: it forgot the challenge.
    node1.kill();
    let (_node2, url2) = devnet(&listen, &dir.path().join("devnet"));
    assert_eq!(url2, url);
    for w in ["payee", "payer"] {
        let _ = client(&url, None).call("loadwallet", vec![json!(w)]).await;
    }
    let lost = redeem(&payee, &ledger, &mut meter, call, &tk).await;
    assert!(matches!(lost, Err(AcceptError::UnknownChallenge)), "{lost:?}");
    meter.challenge_lost(0);
    assert_eq!(meter.challenge_due(Duration::ZERO), Some(0), "the same interval is challenged again");
    let ch2 = challenge(&payee, &ledger, &mut meter, call, 0).await;
    assert_ne!(ch2, ch);
    let tk2 = pay(&payer, &payer_ledger, call, &ch2).await;
    assert_ne!(tk2, tk, "a new challenge gets a new ticket");
    assert_eq!(redeem(&payee, &ledger, &mut meter, call, &tk2).await.unwrap(), TicketVerdict::Paid);
    assert!(meter.may_connect());
    // The ledger kept the row through it all (and would through a PBX restart).
    drop(ledger);
    let reopened = Ledger::open(&dir.path().join("payee.db")).unwrap();
    assert_eq!(reopened.paid_intervals(call).unwrap(), 1);
}

/// The devnet's own RANDPAY arithmetic (the node's rules), many tickets: the mean
/// payment per interval is the tariff's price, within four standard errors.
#[test]
fn the_mean_payment_equals_the_tariff() {
    use ness_devnet::randpay::{Challenge, Ticket as DevTicket};
    for (price, risk, interval) in [("0.01", 10u32, 60u32), ("0.002", 100, 30), ("0.05", 3, 10)] {
        let t = Tariff::new("+", price, risk, interval, 5).unwrap();
        let amount = t.ticket_amount().0;
        let n = 60_000u32;
        let mut paid: i128 = 0;
        for _ in 0..n {
            let c = Challenge::new(amount, risk, "payee");
            let ticket = DevTicket::new(&c.c, risk, amount, true, "payer");
            assert!(c.covers(&ticket.paid));
            if ticket.paid == c.x {
                paid += i128::from(amount);
            }
        }
        let mean = paid as f64 / f64::from(n);
        let want = t.interval_price().0 as f64;
        let p = 1.0 / f64::from(risk);
        let se = amount as f64 * (p * (1.0 - p) / f64::from(n)).sqrt();
        assert!((mean - want).abs() < 4.0 * se, "price {price} risk {risk}: mean {mean:.1} vs {want} (se {se:.1})");
    }
}

/// The payee and payer roles as the PBX modules drive them: INVITE → 402 →
/// INVITE with a ticket → routed; the timer's challenges answered interval by
/// interval; a payer that stops paying is cut at interval + grace.
#[tokio::test]
async fn a_metered_call_end_to_end_through_both_roles() {
    use ness_core::randpay::session::TicketError;
    use ness_core::randpay::{InviteDecision, Payee, PayeeAction, Payer, TariffTable};
    let dir = tempfile::tempdir().unwrap();
    let (_node, url) = devnet("127.0.0.1:0", &dir.path().join("devnet"));
    let (payee_node, payer_node) = wallets(&url).await;
    let tariffs = TariffTable::new(vec![Tariff::new("+49", "0.01", 5, 60, 10).unwrap(), Tariff::new("+4930", "0.005", 5, 60, 10).unwrap()]);
    let payee = Payee::new(payee_node, Ledger::open(&dir.path().join("payee.db")).unwrap(), tariffs);
    let payer = Payer::new(payer_node, Ledger::open(&dir.path().join("payer.db")).unwrap(), policy());
    let call = "e2e-call@payer";

    // No tariff: refused outright.
    assert!(matches!(payee.invite("other", "+15551234567", None).await, InviteDecision::Refuse(403, _)));
    let InviteDecision::Challenge(ch) = payee.invite(call, "+4930123456", None).await else { panic!("no 402") };
    assert!(ch.contains("price=\"0.005000\""), "the longest prefix's tariff: {ch}");
    // The 402 retransmitted: the same challenge.
    assert_eq!(payee.invite(call, "+4930123456", None).await, InviteDecision::Challenge(ch.clone()));
    let tk = payer.pay(call, "+4930123456", &ch).await.unwrap();
    assert_eq!(payee.invite(call, "+4930123456", Some(&tk)).await, InviteDecision::Proceed);
    assert_eq!(payee.invite(call, "+4930123456", Some(&tk)).await, InviteDecision::Proceed, "a retransmitted INVITE");

    let t0 = std::time::Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    assert!(payee.answered(call, t0));
    assert!(payee.tick(at(30)).await.is_empty());
    for (seq, t) in [(1u32, 45u64), (2, 105)] {
        let actions = payee.tick(at(t)).await;
        let [PayeeAction::SendChallenge { call_id, header }] = actions.as_slice() else { panic!("{actions:?}") };
        assert_eq!(call_id, call);
        assert!(header.starts_with(&format!("seq={seq};")), "{header}");
        assert!(payee.tick(at(t + 1)).await.is_empty(), "one challenge per interval");
        let tk = payer.pay(call, "+4930123456", header).await.unwrap();
        assert_eq!(payer.pay(call, "+4930123456", header).await.unwrap(), tk, "a repeated INFO gets the same ticket");
        payee.ticket(call, &tk).await.unwrap();
        assert!(matches!(payee.ticket(call, &tk).await, Ok(ness_core::randpay::meter::TicketVerdict::Duplicate)));
    }
    assert_eq!(payee.calls(at(150))[0].paid_intervals, 3);
    // The payer stops paying: the challenge for seq 3 goes unanswered.
    let actions = payee.tick(at(165)).await;
    assert!(matches!(actions.as_slice(), [PayeeAction::SendChallenge { .. }]), "{actions:?}");
    assert!(payee.tick(at(189)).await.is_empty(), "within the grace");
    assert_eq!(payee.tick(at(190)).await, vec![PayeeAction::End { call_id: call.into(), seq: 3 }]);
    payee.ended(call, "unpaid");
    assert!(payee.calls(at(191)).is_empty());
    assert!(matches!(payee.ticket(call, "seq=3;ticket=\"ecec00000000000000000000\"").await, Err(TicketError::NoCall)));
    // A payer policy refuses an expensive challenge.
    let pricey = ch.replace("price=\"0.005000\"", "price=\"0.001000\"").replacen(":5:", ":1:", 1);
    assert!(payer.pay("x", "+49", &pricey).await.is_err(), "the chap's own price counts, not the announced one");
}

/// The HTTP side channel (an Asterisk on either end): the payer fetches the first
/// challenge before its INVITE, then polls for the next ones and posts tickets.
#[tokio::test]
async fn the_side_channel_carries_challenges_and_tickets() {
    use ness_core::randpay::side_channel::{self, SideChannel, SideError};
    use ness_core::randpay::{InviteDecision, Payee, PayeeAction, Payer, TariffTable};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let (_node, url) = devnet("127.0.0.1:0", &dir.path().join("devnet"));
    let (payee_node, payer_node) = wallets(&url).await;
    let payee = Arc::new(Payee::new(
        payee_node,
        Ledger::open(&dir.path().join("payee.db")).unwrap(),
        TariffTable::new(vec![Tariff::new("+49", "0.01", 5, 30, 5).unwrap(), Tariff::new("+44", "0.02", 5, 30, 5).unwrap()]),
    ));
    let payer = Arc::new(Payer::new(payer_node, Ledger::open(&dir.path().join("payer.db")).unwrap(), policy()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(side_channel::serve(listener, payee.clone(), vec!["127.0.0.1".parse().unwrap()], stopped));
    let side = SideChannel::new(&format!("http://{addr}"), Duration::from_secs(3));
    let call = "side/call@asterisk-payer";

    // Before the INVITE: the first challenge, paid; the INVITE carries the ticket.
    let ch = side.challenge(call, Some("+4930123456")).await.unwrap().expect("a challenge for seq 0");
    assert_eq!(side.challenge(call, None).await.unwrap().as_deref(), Some(ch.as_str()), "asked again: the same");
    let tk = payer.pay(call, "+4930123456", &ch).await.unwrap();
    assert_eq!(payee.invite(call, "+4930123456", Some(&tk)).await, InviteDecision::Proceed);
    assert_eq!(side.challenge(call, None).await.unwrap(), None, "nothing due");
    assert!(payee.on_side_channel(call), "started on the side channel: no challenge in SIP");
    assert!(matches!(payee.invite("sip-only@payer", "+4930123456", None).await, InviteDecision::Challenge(_)));
    assert!(!payee.on_side_channel("sip-only@payer"), "started by its INVITE: challenges go in SIP");

    // During the call: the timer's challenge is fetched by polling and paid by POST.
    let t0 = std::time::Instant::now();
    assert!(payee.answered(call, t0));
    let actions = payee.tick(t0 + Duration::from_secs(23)).await;
    assert!(matches!(actions.as_slice(), [PayeeAction::SendChallenge { .. }]), "{actions:?}");
    let ch1 = side.challenge(call, None).await.unwrap().expect("seq 1 due");
    assert!(ch1.starts_with("seq=1;"));
    side.ticket(call, &payer.pay(call, "+4930123456", &ch1).await.unwrap()).await.unwrap();
    assert_eq!(side.challenge(call, None).await.unwrap(), None);
    assert_eq!(payee.calls(t0)[0].paid_intervals, 2);
    // The host's own call timer (the dialog module's) follows the paid time:
    // deadline of interval 2 (2×30 + 5 s after the answer) plus 30 s.
    assert_eq!(payee.paid_intervals(call), Some(2));
    assert_eq!(payee.backstop_secs(call, t0 + Duration::from_secs(23)), Some(2 * 30 + 5 - 23 + 30));

    // Refusals: garbage, an unknown call, a destination without a tariff.
    match side.ticket(call, "seq=2;ticket=\"nothex\"").await {
        Err(SideError::Refused { status: 409, body }) => assert!(body.contains("malformed"), "{body}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(side.ticket("no-such-call", &tk).await, Err(SideError::Refused { status: 404, .. })));
    assert!(matches!(side.challenge("other", Some("+15551234567")).await, Err(SideError::Refused { status: 403, .. })));
    assert!(matches!(side.challenge("other", None).await, Err(SideError::Refused { status: 404, .. })));

    // A call priced on the side channel as one number cannot be placed to a dearer one.
    let cheap = "priced-as-berlin@payer";
    let ch = side.challenge(cheap, Some("+4930123456")).await.unwrap().expect("a challenge");
    let tk = payer.pay(cheap, "+4930123456", &ch).await.unwrap();
    match payee.invite(cheap, "+442079460000", Some(&tk)).await {
        InviteDecision::Refuse(403, why) => assert!(why.contains("Does Not Match"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(payee.invite(cheap, "+4930999", Some(&tk)).await, InviteDecision::Proceed, "same tariff, other number: fine");

    // Only trunk peers are served.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = listener.local_addr().unwrap();
    let (_stop2, stopped2) = tokio::sync::watch::channel(false);
    tokio::spawn(side_channel::serve(listener, payee.clone(), vec!["10.9.9.9".parse().unwrap()], stopped2));
    let stranger = SideChannel::new(&format!("http://{closed}"), Duration::from_secs(2));
    assert!(matches!(stranger.challenge(call, None).await, Err(SideError::Transport { .. })), "a stranger gets no answer");

    // The core side payer (both modules' payers): the first ticket for the
    // INVITE, then each next challenge fetched and paid on its schedule.
    use ness_core::randpay::side_payer::{HandOver, SidePayer};
    let sp = Arc::new(SidePayer::new(payer.clone(), Duration::from_secs(3)));
    let call = "side-payer@kamailio-payer";
    let base = format!("http://{addr}");
    let tk = sp.pay_first(call, "+4930123456", &base, "", HandOver::InInvite).await.unwrap().expect("a ticket");
    assert!(tk.starts_with("seq=0;"), "{tk}");
    assert_eq!(payee.calls(std::time::Instant::now()).iter().find(|c| c.call_id == call).unwrap().paid_intervals, 0, "in the INVITE, not posted");
    assert_eq!(payee.invite(call, "+4930123456", Some(&tk)).await, InviteDecision::Proceed);
    let t0 = std::time::Instant::now();
    assert!(payee.answered(call, t0));
    assert!(payee.tick(t0 + Duration::from_secs(23)).await.iter().any(|a| matches!(a, PayeeAction::SendChallenge { call_id, .. } if call_id == call)));
    sp.tick(t0 + Duration::from_secs(60));
    let mut waited = 0;
    while sp.tickets(call) != Some(2) {
        assert!(waited < 100, "the side payer did not pay interval 1: {:?}", sp.calls());
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert_eq!(payee.calls(t0).iter().find(|c| c.call_id == call).unwrap().paid_intervals, 2);
    assert_eq!(sp.calls()[0].url, base);
    // The payee ends the call: the next poll finds it forgotten and stops.
    payee.ended(call, "unpaid");
    sp.tick(t0 + Duration::from_secs(120));
    let mut waited = 0;
    while sp.knows(call) {
        assert!(waited < 100, "the side payer kept a call the payee forgot");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert!(matches!(sp.pay_first("x", "+4930123456", "http://127.0.0.1:1", "", HandOver::Post).await, Err(ness_core::randpay::side_payer::PayFailure::Side(_))));

    stop.send(true).unwrap();
    server.await.unwrap();
}

/// The operator's `tariff(ctx)` Lua hook prices calls on both paths a payee
/// sees (an INVITE, the side channel's `GET ?number=`): it may change a
/// tariff's price, risk and interval, price a destination the table lacks, and
/// see the caller; a failing hook or an unusable answer leaves the table's
/// tariff. A call keeps the tariff it was first priced by.
#[tokio::test]
async fn the_tariff_hook_prices_calls_on_both_paths() {
    use ness_core::hooks::{CallCtx, HookError, HookSettings, Hooks, NoNode, TariffDecision};
    use ness_core::randpay::side_channel::{self, SideChannel};
    use ness_core::randpay::{InviteDecision, Payee, Payer, TariffHook, TariffTable};
    use std::sync::{Arc, Mutex};

    struct Script(Mutex<Hooks>);
    impl TariffHook for Script {
        fn tariff(&self, ctx: &CallCtx) -> Result<Option<TariffDecision>, HookError> {
            self.0.lock().unwrap().tariff(ctx)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("tariff.lua");
    std::fs::write(
        &script,
        r#"
function tariff(ctx)
  if ctx.caller == "vip" then return { price = "0.001" } end          -- the default's risk and interval
  if ctx.number:sub(1, 3) == "+44" then                                -- not in the table
    return { price = ctx.default and "0.5" or "0.004", risk = 2, interval = 20, grace = 4 }
  end
  if ctx.number:sub(1, 4) == "+331" then return { price = "1", interval = 5 } end  -- too short
  if ctx.number:sub(1, 3) == "+39" then error("no tariff service") end
  if ctx.number:sub(1, 3) == "+33" then return nil end
  return { price = ctx.default.price, risk = ctx.default.risk * 2 }
end
"#,
    )
    .unwrap();
    let hooks = Hooks::load(HookSettings::new(&script), Arc::new(NoNode)).unwrap();
    let (_node, url) = devnet("127.0.0.1:0", &dir.path().join("devnet"));
    let (payee_node, payer_node) = wallets(&url).await;
    let table = TariffTable::new(vec![Tariff::new("+49", "0.01", 5, 60, 10).unwrap(), Tariff::new("+33", "0.02", 5, 30, 5).unwrap()]);
    let payee = Arc::new(
        Payee::new(payee_node, Ledger::open(&dir.path().join("payee.db")).unwrap(), table).with_tariff_hook(Arc::new(Script(Mutex::new(hooks)))),
    );
    let payer = Payer::new(payer_node, Ledger::open(&dir.path().join("payer.db")).unwrap(), policy());
    let challenge = |d: InviteDecision| match d {
        InviteDecision::Challenge(h) => ChallengeHeader::parse(&h).unwrap(),
        other => panic!("no 402: {other:?}"),
    };

    // The hook sees the caller and the default, and answers in part or in full.
    let vip = challenge(payee.invite_priced("vip-call", "+4930123456", "vip", None, None).await);
    assert_eq!((vip.price_per_minute, vip.interval_secs), (Amount::parse("0.001").unwrap(), 60));
    assert_eq!(payee.tariff_of("vip-call").unwrap().risk, 5, "risk from the default");
    payee.invite("plain-call", "+4930123456", None).await;
    assert_eq!(payee.tariff_of("plain-call").unwrap().line(), "+49 0.01 risk=10 interval=60 grace=10", "risk doubled, the rest as the table's");
    let uk = challenge(payee.invite("uk-call", "+442079460000", None).await);
    assert_eq!((uk.price_per_minute, uk.interval_secs, uk.grace_secs), (Amount::parse("0.004").unwrap(), 20, 4), "no default: the hook's own");
    assert_eq!(payee.tariff_of("uk-call").unwrap().risk, 2);
    // nil, an unusable answer and an error all leave the table's tariff.
    for (call, number) in [("fr", "+33612345678"), ("paris", "+33123456789")] {
        let c = challenge(payee.invite(call, number, None).await);
        assert_eq!((c.price_per_minute, c.interval_secs), (Amount::parse("0.02").unwrap(), 30), "{number}");
    }
    assert!(matches!(payee.invite("it", "+390612345678", None).await, InviteDecision::Refuse(403, _)), "a failing hook, and no table tariff");
    // An explicit line from the dialplan is the default the hook sees.
    payee.invite_priced("line-call", "+4930123456", "", Some(Tariff::parse_line("+49 0.003 risk=7").unwrap()), None).await;
    assert_eq!(payee.tariff_of("line-call").unwrap().line(), "+49 0.003 risk=14 interval=60 grace=10");

    // The side channel prices with the same hook (no caller there); the INVITE
    // that follows, with its caller, keeps that tariff instead of a 403.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(side_channel::serve(listener, payee.clone(), vec!["127.0.0.1".parse().unwrap()], stopped));
    let side = SideChannel::new(&format!("http://{addr}"), Duration::from_secs(3));
    let call = "side-priced@payer";
    let ch = side.challenge(call, Some("+4930123456")).await.unwrap().expect("a challenge");
    assert_eq!(ChallengeHeader::parse(&ch).unwrap().price_per_minute, Amount::parse("0.01").unwrap());
    assert_eq!(payee.tariff_of(call).unwrap().risk, 10, "the hook ran on the side channel");
    let tk = payer.pay(call, "+4930123456", &ch).await.unwrap();
    assert_eq!(payee.invite_priced(call, "+4930123456", "vip", None, Some(&tk)).await, InviteDecision::Proceed);
    assert_eq!(payee.tariff_of(call).unwrap().price_per_minute, Amount::parse("0.01").unwrap(), "priced once");
    // Another number must still cost the same, priced by the hook as well.
    let other = "side-then-uk@payer";
    side.challenge(other, Some("+4930123456")).await.unwrap().expect("a challenge");
    assert!(matches!(payee.invite(other, "+442079460000", None).await, InviteDecision::Refuse(403, _)));
}
