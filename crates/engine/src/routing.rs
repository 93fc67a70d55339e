//! Routing of new SIP transactions: REGISTER to the registrar, a carrier's
//! INVITE to a new call, an agent's INVITE (after digest authentication) to
//! a feature code, in-dialog requests to their dialog.

use crate::call::{self, IncomingCall};
use crate::features;
use crate::streams::Throttle;
use crate::switch::Switch;
use crate::{reply, source_of, ALLOW};
use permanence_numbers::{mask, Country};
use permanence_sip::registrar::{AuthResult, RegisterOutcome};
use permanence_sip::{extract, intake};
use permanence_types::Transport;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, StatusCode};
use rsipstack::transaction::Transaction;
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::{debug, info, warn};

/// The transport a connection carries: TCP and TLS connections reach
/// rsipstack as channels ([`crate::streams`]) whose address names it.
fn connection_transport(c: &rsipstack::transport::SipConnection) -> Option<Transport> {
    let t = match c {
        rsipstack::transport::SipConnection::Channel(ch) => ch.get_addr().r#type?,
        other => other.transport(),
    };
    Transport::parse(&t.to_string())
}

/// Routes a new transaction: REGISTER to the registrar, a new INVITE to a
/// call (carrier) or a feature code (agent), in-dialog requests to their
/// dialog, OPTIONS answered here.
///
/// The transaction comes boxed and each branch's future is boxed: a task
/// is as large as its largest state, and this one lives as long as the
/// call it starts (a forwarded call's task was 18 KB with them inline).
pub(crate) async fn handle_transaction(switch: Arc<Switch>, mut tx: Box<Transaction>) {
    let method = tx.original.method;
    let in_dialog = tx
        .original
        .to_header()
        .ok()
        .and_then(|t| t.tag().ok().flatten())
        .is_some();
    let Some(source) = source_of(&tx) else {
        debug!("transaction without a source address");
        return;
    };
    match method {
        Method::Register => Box::pin(handle_register(&switch, &mut tx, source)).await,
        Method::Invite if !in_dialog => Box::pin(handle_invite(switch, tx, source)).await,
        Method::Ack => {}
        _ if in_dialog => match switch.sip.dialogs.match_dialog(&tx) {
            Some(mut d) => {
                if let Err(e) = Box::pin(d.handle(&mut tx)).await {
                    debug!(error = %e, %method, "in-dialog request failed");
                }
            }
            None => reply(&mut tx, StatusCode::CallTransactionDoesNotExist, vec![]).await,
        },
        Method::Options => {
            let headers = vec![
                Header::Allow(ALLOW.into()),
                Header::Other("Accept".into(), "application/sdp".into()),
            ];
            reply(&mut tx, StatusCode::OK, headers).await
        }
        Method::Bye | Method::Info | Method::Update | Method::PRack => {
            reply(&mut tx, StatusCode::CallTransactionDoesNotExist, vec![]).await
        }
        _ => {
            reply(
                &mut tx,
                StatusCode::MethodNotAllowed,
                vec![Header::Allow(ALLOW.into())],
            )
            .await
        }
    }
}

async fn handle_register(switch: &Switch, tx: &mut Transaction, source: SocketAddr) {
    let transport = tx
        .connection
        .as_ref()
        .and_then(connection_transport)
        .unwrap_or_else(|| extract::via_transport(&tx.original));
    let req = match extract::register_request(&tx.original, source, transport) {
        Ok(r) => r,
        Err(reason) => {
            info!(event = "register.bad_request", %source, reason, "malformed REGISTER");
            reply(tx, StatusCode::BadRequest, vec![]).await;
            return;
        }
    };
    let lookup = |u: &str| switch.secrets(u);
    let (outcome, registered) = switch.registrations.register(&req, &lookup);
    match outcome {
        RegisterOutcome::Challenge { www_authenticate } => {
            let h = www_authenticate
                .into_iter()
                .map(|v| Header::WwwAuthenticate(v.into()))
                .collect();
            reply(tx, StatusCode::Unauthorized, h).await
        }
        RegisterOutcome::Ok { bindings } => {
            let h = bindings
                .into_iter()
                .map(|(uri, exp)| Header::Contact(format!("<{uri}>;expires={exp}").into()))
                .collect();
            reply(tx, StatusCode::OK, h).await
        }
        RegisterOutcome::IntervalTooBrief { min_expires } => {
            reply(
                tx,
                StatusCode::IntervalTooBrief,
                vec![Header::MinExpires(min_expires.to_string().into())],
            )
            .await
        }
        RegisterOutcome::Forbidden(_) => reply(tx, StatusCode::Forbidden, vec![]).await,
        RegisterOutcome::BadRequest(_) => reply(tx, StatusCode::BadRequest, vec![]).await,
        RegisterOutcome::OutOfOrder => reply(tx, StatusCode::ServerInternalError, vec![]).await,
    }
    // After the answer: an agent who became reachable may get an INVITE at
    // once, which must not overtake the 200 OK.
    registered.announce();
}

/// An INVITE that is not a carrier's: authenticate the telesecretary
/// (407 challenge), then run the feature code.
async fn agent_invite(
    switch: Arc<Switch>,
    mut tx: Box<Transaction>,
    source: SocketAddr,
    call_id: String,
    dialled: String,
) {
    let authz = extract::header_value(&tx.original.headers, "Proxy-Authorization");
    let lookup = |u: &str| switch.secrets(u);
    match switch
        .registrations
        .authenticate(authz, "INVITE", &lookup, source)
    {
        AuthResult::Challenge(h) | AuthResult::Replayed { challenge: h, .. } => {
            debug!(event = "invite.challenged", %source, call_id, "INVITE from a non-trunk source challenged");
            switch
                .metrics
                .sip_rejected(permanence_metrics::SipReject::Acl);
            let h = h
                .into_iter()
                .map(|v| Header::ProxyAuthenticate(v.into()))
                .collect();
            reply(&mut tx, StatusCode::ProxyAuthenticationRequired, h).await;
        }
        AuthResult::Throttled { user, .. } => {
            debug!(event = "invite.throttled", %source, user, "INVITE from a blocked source refused");
            switch
                .metrics
                .sip_rejected(permanence_metrics::SipReject::Auth);
            reply(&mut tx, StatusCode::Forbidden, vec![]).await;
        }
        AuthResult::Failed { user, reason } => {
            warn!(event = "invite.forbidden", %source, user, reason, "INVITE refused");
            switch
                .metrics
                .sip_rejected(permanence_metrics::SipReject::Auth);
            reply(&mut tx, StatusCode::Forbidden, vec![]).await;
        }
        AuthResult::Authenticated(user) if crate::outbound::is_outbound(&dialled) => {
            let req = crate::outbound::Request {
                agent: user.as_str().into(),
                dialled,
                source,
            };
            let audit = switch.audit.clone();
            Box::pin(crate::outbound::place(switch.calls.clone(), audit, tx, req)).await;
        }
        AuthResult::Authenticated(user) => {
            Box::pin(features::agent_call(
                switch.features.clone(),
                *tx,
                user,
                dialled,
                source,
            ))
            .await;
        }
    }
}

async fn handle_invite(switch: Arc<Switch>, mut tx: Box<Transaction>, source: SocketAddr) {
    let cfg = switch.config();
    let call_id = extract::call_id(&tx.original).unwrap_or_default();
    if switch.is_draining() {
        switch
            .metrics
            .sip_rejected(permanence_metrics::SipReject::Overload);
        reply(
            &mut tx,
            StatusCode::ServiceUnavailable,
            vec![Header::RetryAfter("30".into())],
        )
        .await;
        return;
    }
    let dialled = extract::uri_user(&tx.original.uri.to_string())
        .map(str::to_string)
        .unwrap_or_default();
    let feature_code = dialled.starts_with('*') || dialled.starts_with("%2A");
    // A browser (SIP over WebSocket) is never a carrier, whatever its
    // address: it must authenticate like any telesecretary.
    let websocket = tx
        .connection
        .as_ref()
        .and_then(connection_transport)
        .is_some_and(Transport::is_websocket);
    let trunk = cfg
        .trunk_for(source.ip())
        .filter(|_| !feature_code && !websocket);
    let Some(trunk) = trunk else {
        // Not a carrier (or a feature code, which no carrier delivers):
        // only an authenticated telesecretary may call in.
        drop(cfg);
        Box::pin(agent_invite(switch, tx, source, call_id, dialled)).await;
        return;
    };
    let ruri = tx.original.uri.to_string();
    let view = extract::intake_view(&tx.original, &ruri);
    let found = intake::identify(&view, Country::Fr, |n| cfg.practice_by_number(n));
    let Some((practice, number, via)) = found else {
        let candidates: Vec<String> = intake::called_numbers(&view, Country::Fr)
            .into_iter()
            .map(|(s, n)| format!("{}:{}", s.as_str(), n.masked()))
            .collect();
        info!(
            event = "intake.unknown_number",
            trunk = %trunk.name,
            call_id,
            candidates = ?candidates,
            "no practice for this call: 404"
        );
        reply(&mut tx, StatusCode::NotFound, vec![]).await;
        return;
    };
    let caller = extract::caller_id(&tx.original);
    let caller_user = extract::uri_user(&caller).unwrap_or(&caller).to_string();
    info!(
        event = "call.identified",
        practice = %practice.id,
        number = %number.masked(),
        via = via.as_str(),
        trunk = %trunk.name,
        caller = %mask(&caller_user),
        call_id,
        "forwarded call identified"
    );
    let caller = permanence_numbers::normalize(&caller, practice.country)
        .map(|n| n.as_str().to_string())
        .unwrap_or(caller_user);
    let max_calls = cfg.sip.limits.max_calls;
    if switch.live.len() >= max_calls as usize {
        let (practice, trunk) = (practice.id.clone(), trunk.name.clone());
        drop(cfg);
        refuse_overload(&switch, tx, &call_id, &practice, &trunk, &caller, max_calls).await;
        return;
    }
    let incoming = IncomingCall {
        practice: practice.id.clone(),
        open: practice.hours.is_open(switch.clock.wall()),
        trunk: trunk.name.clone(),
        called: number.as_str().to_string(),
        via,
        received_at: switch.clock.wall(),
        sip_call_id: call_id,
        caller,
    };
    drop(cfg);
    Box::pin(call::run_call(switch.calls.clone(), tx, incoming)).await;
}

/// A sustained overload logs one `call.overload` line per
/// 10 s (the streams' log period), with the count, not one per refused call.
static OVERLOAD_LOG: parking_lot::Mutex<Throttle> = parking_lot::Mutex::new(Throttle::new());

/// Refuses a carrier's call because `max_calls` calls are in progress:
/// 503 without Retry-After (the carrier tries its next route at once),
/// counted as `sip_rejected{reason="overload"}` and recorded as a rejected
/// call, like every call that reached a practice.
async fn refuse_overload(
    switch: &Switch,
    mut tx: Box<Transaction>,
    call_id: &str,
    practice: &str,
    trunk: &str,
    caller: &str,
    max_calls: u32,
) {
    switch
        .metrics
        .sip_rejected(permanence_metrics::SipReject::Overload);
    switch.record_rejected(call_id, practice, trunk, caller, "overload");
    let due = OVERLOAD_LOG.lock().note(std::time::Instant::now());
    if let Some(refused) = due {
        warn!(
            event = "call.overload",
            practice,
            trunk,
            max_calls,
            refused,
            "calls in progress at [sip.limits] max_calls: new calls get 503"
        );
    }
    reply(&mut tx, StatusCode::ServiceUnavailable, vec![]).await;
}
