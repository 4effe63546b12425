//! Memory handed back when listeners leave: a listener's control channel ending counts for the
//! heap-trim loop (`heap_trim::released`), as a bridge ending does. Without it a relay kept the
//! memory of 10,000 closed listeners until some bridge happened to end (docs/performance.md,
//! "Relay capacity"). One test in its own binary: the count is process-wide.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn a_listener_leaving_counts_as_released_memory() {
    within(async {
        let relay = TestRelay::start(false, |_| {}).await;
        let mut control = relay.listen().await;
        let before = heap_trim::released_count();
        control.close(None).await.expect("close");
        drop(control);
        relay.stats.wait_for_listeners(HC, 0).await;
        // The count follows the slot's release in the same task: poll, bounded (10 s).
        let mut counted = false;
        for _ in 0..1000 {
            if heap_trim::released_count() > before {
                counted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            counted,
            "a listener left and nothing was counted as released"
        );
        relay.stop().await;
    })
    .await;
}
