//! `cairn diff URL_A URL_B [--types P]… [--json]`: which facts each of two
//! deployments lacks, by comparing digests over the hash space
//! (`cairn_replication::diff`; "Anti-entropy" in `docs/api-v1.md`).
//! Tokens come from the environment (`CAIRN_TOKEN_A`, `CAIRN_TOKEN_B`,
//! else `CAIRN_TOKEN`), never from the command line, where other users
//! of the machine could read them. Exit status: 0 when both hold the same
//! facts of those types, 1 when they differ, 2 on error.

use std::process::ExitCode;
use std::time::Instant;

use cairn_api::Pattern;
use cairn_replication::{
    diff, parse_source_url, Certificate, DiffOptions, Difference, HttpDigestSource,
};
use serde_json::json;

/// Exit status when the deployments differ.
const EXIT_DIFFERENT: u8 = 1;
/// Exit status on an error.
const EXIT_ERROR: u8 = 2;

/// Arguments of `cairn diff`.
#[derive(clap::Args)]
pub struct DiffArgs {
    /// Base URL of deployment A, e.g. http://127.0.0.1:7710 (its token, if
    /// it runs with --auth: CAIRN_TOKEN_A, else CAIRN_TOKEN).
    url_a: String,
    /// Base URL of deployment B (its token: CAIRN_TOKEN_B, else CAIRN_TOKEN).
    url_b: String,
    /// Compare only facts of types matching this pattern (repeatable;
    /// default: every type the tokens may read).
    #[arg(long = "types", value_name = "PATTERN")]
    types: Vec<String>,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    json: bool,
    /// Trust the certificate authorities in this PEM file (besides the
    /// public roots) for `https://` deployments.
    #[arg(long, env = "CAIRN_CA_CERT", value_name = "FILE")]
    ca_cert: Option<std::path::PathBuf>,
}

fn token(specific: &str) -> Option<String> {
    [specific, "CAIRN_TOKEN"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.is_empty())
}

fn source(
    url: &str,
    token_variable: &str,
    roots: &[Certificate],
) -> Result<HttpDigestSource, String> {
    let base = parse_source_url(url).map_err(|error| format!("{url}: {error}"))?;
    HttpDigestSource::new(base, token(token_variable), roots).map_err(|error| error.to_string())
}

/// The certificate authorities of `--ca-cert`, if given.
fn roots(file: Option<&std::path::Path>) -> Result<Vec<Certificate>, String> {
    let Some(file) = file else {
        return Ok(Vec::new());
    };
    let pem = std::fs::read(file).map_err(|error| {
        format!(
            "cannot read the CA certificate file {}: {error}",
            file.display()
        )
    })?;
    match Certificate::from_pem_bundle(&pem) {
        Ok(roots) if !roots.is_empty() => Ok(roots),
        _ => Err(format!(
            "the CA certificate file {} holds no PEM certificate",
            file.display()
        )),
    }
}

/// Runs the comparison and prints it; answers the exit status.
pub async fn run(args: DiffArgs) -> ExitCode {
    match compare(&args).await {
        Ok((difference, seconds)) => {
            print(&args, &difference, seconds);
            if difference.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_DIFFERENT)
            }
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

async fn compare(args: &DiffArgs) -> Result<(Difference, f64), String> {
    let mut types = Vec::with_capacity(args.types.len());
    for text in &args.types {
        let pattern = Pattern::parse(text).map_err(|error| format!("--types {text:?}: {error}"))?;
        types.push(pattern.as_str().to_string());
    }
    let roots = roots(args.ca_cert.as_deref())?;
    let a = source(&args.url_a, "CAIRN_TOKEN_A", &roots)?;
    let b = source(&args.url_b, "CAIRN_TOKEN_B", &roots)?;
    let started = Instant::now();
    let difference = diff(&a, &b, &types, &DiffOptions::default())
        .await
        .map_err(|error| error.to_string())?;
    Ok((difference, started.elapsed().as_secs_f64()))
}

fn print(args: &DiffArgs, difference: &Difference, seconds: f64) {
    if args.json {
        let hex = |hashes: &[cairn_fact::Hash]| -> Vec<String> {
            hashes.iter().map(|hash| hash.to_hex()).collect()
        };
        let answer = json!({
            "same": difference.is_empty(),
            "store_a": difference.store_a,
            "store_b": difference.store_b,
            "count_a": difference.count_a,
            "count_b": difference.count_b,
            "only_in_a": hex(&difference.only_in_a),
            "only_in_b": hex(&difference.only_in_b),
            "requests": difference.requests,
            "seconds": seconds,
        });
        println!("{answer}");
        return;
    }
    for hash in &difference.only_in_a {
        println!("only in A: {hash}");
    }
    for hash in &difference.only_in_b {
        println!("only in B: {hash}");
    }
    let verdict = if difference.is_empty() {
        "the same facts".to_string()
    } else {
        format!(
            "{} only in A, {} only in B",
            difference.only_in_a.len(),
            difference.only_in_b.len()
        )
    };
    println!(
        "A (store {}, {} facts) and B (store {}, {} facts): {verdict} ({} requests, {seconds:.3} s)",
        difference.store_a,
        difference.count_a,
        difference.store_b,
        difference.count_b,
        difference.requests
    );
}
