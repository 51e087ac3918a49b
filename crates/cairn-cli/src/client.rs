//! Client commands: `hash` (offline) and `put`, `get`, `successors`, `log`,
//! `tail`, which talk to a server over HTTP and print its JSON answers.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use cairn_fact::{CanonicalFact, FACT_CANONICAL_BYTES_MAX_DEFAULT};

use crate::ServerArg;

/// Options of `cairn successors`.
#[derive(clap::Args)]
pub struct SuccessorsArgs {
    /// The predecessor's hash.
    hash: String,
    /// Successor type.
    #[arg(long = "type")]
    type_name: String,
    /// Only successors naming the fact in this role.
    #[arg(long)]
    role: Option<String>,
    /// Exclude successors that have a successor of this type (repeatable).
    #[arg(long)]
    without: Vec<String>,
    /// At most this many facts.
    #[arg(long)]
    limit: Option<u64>,
    /// Only successors after this seq.
    #[arg(long)]
    after: Option<u64>,
    /// Long-poll up to this many milliseconds for a first result.
    #[arg(long)]
    wait_ms: Option<u64>,
    #[command(flatten)]
    server: ServerArg,
}

fn read_input(file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match file {
        None => std::io::stdin().read_to_end(&mut bytes).map(|_| ())?,
        Some(path) if path == Path::new("-") => {
            std::io::stdin().read_to_end(&mut bytes).map(|_| ())?
        }
        Some(path) => {
            bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
    }
    Ok(bytes)
}

/// `cairn hash`: prints the hash of one fact, computed offline.
pub fn hash(file: Option<&Path>) -> anyhow::Result<()> {
    let bytes = read_input(file)?;
    let fact = CanonicalFact::from_json(&bytes, FACT_CANONICAL_BYTES_MAX_DEFAULT)
        .map_err(|error| anyhow::anyhow!("{} ({})", error, error.code()))?;
    println!("{}", fact.hash);
    Ok(())
}

fn http() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .connect_timeout(Duration::from_secs(5))
        .build()?)
}

/// Prints a successful JSON answer; turns an error answer into an error.
async fn finish(response: reqwest::Response) -> anyhow::Result<serde_json::Value> {
    let status = response.status();
    let body = response.bytes().await?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .with_context(|| format!("the server answered {status} with a body that is not JSON"))?;
    if !status.is_success() {
        bail!("the server answered {status}: {value}");
    }
    Ok(value)
}

fn print(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}

fn url(server: &ServerArg, path: &str) -> String {
    format!("{}{}", server.url.trim_end_matches('/'), path)
}

/// `cairn put`: sends one fact or an array of facts as a batch.
pub async fn put(server: &ServerArg, file: Option<&Path>) -> anyhow::Result<()> {
    let input: serde_json::Value = serde_json::from_slice(&read_input(file)?)
        .context("the input is not JSON (a fact, or an array of facts)")?;
    let facts = match input {
        serde_json::Value::Array(facts) => facts,
        fact => vec![fact],
    };
    let response = http()?
        .post(url(server, "/v1/facts"))
        .json(&serde_json::json!({ "facts": facts }))
        .send()
        .await
        .context("cannot reach the server")?;
    print(&finish(response).await?);
    Ok(())
}

/// `cairn get`.
pub async fn get(server: &ServerArg, hash: &str) -> anyhow::Result<()> {
    let response = http()?
        .get(url(server, &format!("/v1/facts/{hash}")))
        .send()
        .await
        .context("cannot reach the server")?;
    print(&finish(response).await?);
    Ok(())
}

/// `cairn successors`.
pub async fn successors(args: &SuccessorsArgs) -> anyhow::Result<()> {
    let mut query: Vec<(&str, String)> = vec![("type", args.type_name.clone())];
    if let Some(role) = &args.role {
        query.push(("role", role.clone()));
    }
    for without in &args.without {
        query.push(("without", without.clone()));
    }
    for (name, value) in [
        ("limit", args.limit),
        ("after", args.after),
        ("wait_ms", args.wait_ms),
    ] {
        if let Some(value) = value {
            query.push((name, value.to_string()));
        }
    }
    let response = http()?
        .get(url(
            &args.server,
            &format!("/v1/facts/{}/successors", args.hash),
        ))
        .query(&query)
        .send()
        .await
        .context("cannot reach the server")?;
    print(&finish(response).await?);
    Ok(())
}

/// `cairn log`.
pub async fn log(server: &ServerArg, after: u64, limit: u64) -> anyhow::Result<()> {
    let response = http()?
        .get(url(server, "/v1/log"))
        .query(&[("after", after), ("limit", limit)])
        .send()
        .await
        .context("cannot reach the server")?;
    print(&finish(response).await?);
    Ok(())
}

/// `cairn tail`: follows the log with long-polls until interrupted.
pub async fn tail(server: &ServerArg, after: Option<u64>) -> anyhow::Result<()> {
    let client = http()?;
    let mut after = match after {
        Some(after) => after,
        None => last_seq(&client, &server.url).await?,
    };
    loop {
        let response = client
            .get(url(server, "/v1/log"))
            .query(&[("after", after), ("limit", 1000), ("wait_ms", 30_000)])
            .send()
            .await
            .context("cannot reach the server")?;
        let page = finish(response).await?;
        for entry in page["facts"].as_array().into_iter().flatten() {
            println!("{entry}");
        }
        after = page["next"]
            .as_u64()
            .context("the answer has no \"next\"")?;
    }
}

/// The seq of the newest durable fact, read from the server's metrics
/// (`cairn_store_last_seq`), so following starts at the end without paging
/// through the whole log.
pub async fn last_seq(client: &reqwest::Client, base_url: &str) -> anyhow::Result<u64> {
    let text = client
        .get(format!("{}/metrics", base_url.trim_end_matches('/')))
        .send()
        .await
        .context("cannot reach the server")?
        .error_for_status()?
        .text()
        .await?;
    text.lines()
        .find_map(|line| line.strip_prefix("cairn_store_last_seq "))
        .and_then(|value| value.trim().parse().ok())
        .context("the server's metrics lack cairn_store_last_seq")
}
