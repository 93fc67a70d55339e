//! What rsipstack's per-transaction and per-dialog channels cost, measured
//! through a counting allocator. Fails if the workspace's rsipstack patch
//! (vendor/README.md, patch 1) is lost, for example on an upgrade.

use permanence_memory::{heap_bytes, Counting};
use rsipstack::dialog::dialog::{dialog_state_channel, DialogState, TerminatedReason};
use rsipstack::dialog::DialogId;
use rsipstack::transaction::transaction::TransactionEvent;

#[global_allocator]
static GLOBAL: Counting<std::alloc::System> = Counting::new(std::alloc::System);

/// Heap bytes held by what `make` returns, measured around its creation.
/// The test binary runs this file's tests one at a time (one test), so no
/// other thread allocates meanwhile.
fn cost_of<T>(make: impl FnOnce() -> T) -> (T, i64) {
    GLOBAL.installed();
    let before = heap_bytes().unwrap_or(0) as i64;
    let made = make();
    let after = heap_bytes().unwrap_or(0) as i64;
    (made, after - before)
}

#[test]
fn transaction_and_dialog_channels_stay_small() {
    // One channel of transaction events per transaction.
    assert!(
        std::mem::size_of::<TransactionEvent>() <= 64,
        "TransactionEvent is {} bytes: its payloads are no longer boxed",
        std::mem::size_of::<TransactionEvent>()
    );
    let (chan, cost) = cost_of(tokio::sync::mpsc::unbounded_channel::<TransactionEvent>);
    assert!(cost > 0, "the counting allocator sees nothing");
    assert!(
        cost <= 2560,
        "a transaction's event channel costs {cost} bytes"
    );
    drop(chan);

    // One channel of dialog states per dialog.
    let ((tx, mut rx), cost) = cost_of(dialog_state_channel);
    assert!(cost <= 1024, "a dialog's state channel costs {cost} bytes");

    // The wrappers still carry states both ways.
    let id = DialogId {
        call_id: "c".into(),
        local_tag: "l".into(),
        remote_tag: "r".into(),
    };
    assert!(tx
        .send(DialogState::Terminated(id, TerminatedReason::UacBye))
        .is_ok());
    assert!(matches!(
        rx.try_recv(),
        Ok(DialogState::Terminated(_, TerminatedReason::UacBye))
    ));
    drop(rx);
    assert!(tx.is_closed());
}
