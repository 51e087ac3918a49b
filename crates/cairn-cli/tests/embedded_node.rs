//! `cairn subs` against a Cairn node embedded in a service's process that
//! listens on a local port (`EmbeddedOptions::listen`): the real CLI binary
//! reaches it as it reaches `cairn serve`, and sees what the service's SDK
//! client created and stored.

mod common;

use cairn_client::{Client, EmbeddedOptions, SubscriptionDefinition};
use common::run_cli;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairn_subs_reaches_an_embedded_node_that_listens() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client =
        Client::embedded_with(EmbeddedOptions::new(dir.path()).listen("127.0.0.1:0")).await?;
    let address = client.local_address().expect("the node listens");
    client
        .apply_subscription("billing", &SubscriptionDefinition::new("Shop.Order"))
        .await?;

    // The CLI blocks; the node keeps serving on the runtime's other thread.
    let base = format!("http://{address}");
    let output = tokio::task::spawn_blocking(move || {
        run_cli(&["subs", "list", "--json", "--server", &base], "")
    })
    .await?;
    assert!(output.success, "cairn subs list failed:\n{}", output.stderr);
    let listed: Value = serde_json::from_str(&output.stdout)?;
    let names: Vec<&str> = listed
        .as_array()
        .or_else(|| listed["subscriptions"].as_array())
        .expect("a list of subscriptions")
        .iter()
        .filter_map(|view| view["name"].as_str())
        .collect();
    assert_eq!(names, vec!["billing"], "{listed}");
    client.close().await;
    Ok(())
}
