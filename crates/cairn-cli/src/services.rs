//! `cairn services`: register a service's declaration (a
//! `cairn-service.toml` in its repository, or JSON by the extension
//! `.json`) and list the declarations, through the SDK. The file is read
//! into the protocol's strict type, so an unknown key or a malformed value
//! is refused here with the file's own line, before anything is sent.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use cairn_api::limits::SERVICE_BODY_BYTES_MAX;
use cairn_api::{RequestBody, ServiceDeclaration, ServiceList};

use crate::client::print_pretty;
use crate::connection::{explain, ServerArg};

/// Options of `cairn services`.
#[derive(clap::Args)]
pub struct ServicesArgs {
    #[command(subcommand)]
    command: ServicesCommand,
}

#[derive(clap::Subcommand)]
enum ServicesCommand {
    /// Register a service's declaration (TOML, or JSON if the file ends in
    /// `.json`): its name, identity, and the types it owns, consumes,
    /// requests and answers. Registering it again replaces it.
    Register {
        /// The declaration file, e.g. `cairn-service.toml`.
        file: PathBuf,
        /// Accept types this deployment has never seen written nor
        /// another service declare (a first deployment).
        #[arg(long)]
        allow_unknown_types: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List the registered declarations.
    List {
        /// Print the server's JSON answer instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
}

/// Runs one `cairn services` command.
pub async fn run(args: ServicesArgs) -> anyhow::Result<()> {
    match args.command {
        ServicesCommand::Register {
            file,
            allow_unknown_types,
            server,
        } => {
            let declaration = read_declaration(&file)?;
            let view = server
                .client()?
                .register_service(&declaration, allow_unknown_types)
                .await
                .map_err(explain)?;
            print_pretty(&view)
        }
        ServicesCommand::List { json, server } => {
            let services = server.client()?.list_services().await.map_err(explain)?;
            if json {
                return print_pretty(&ServiceList { services });
            }
            println!(
                "{:<24} {:<24} {:>5} {:>8} {:>8} {:>7}",
                "SERVICE", "IDENTITY", "OWNS", "CONSUMES", "REQUESTS", "ANSWERS"
            );
            for view in services {
                let declaration = &view.declaration;
                println!(
                    "{:<24} {:<24} {:>5} {:>8} {:>8} {:>7}",
                    declaration.name,
                    declaration.identity,
                    declaration.owns.len(),
                    declaration.consumes.len(),
                    declaration.requests.len(),
                    declaration.answers.len()
                );
            }
            Ok(())
        }
    }
}

/// Reads and checks a declaration file: TOML, or JSON by extension.
pub fn read_declaration(file: &Path) -> anyhow::Result<ServiceDeclaration> {
    let metadata = std::fs::metadata(file)
        .with_context(|| format!("cannot read the declaration {}", file.display()))?;
    // A declaration is small; refuse a huge file before reading it.
    if metadata.len() > SERVICE_BODY_BYTES_MAX as u64 {
        return Err(anyhow!(
            "{}: a declaration is at most {SERVICE_BODY_BYTES_MAX} bytes",
            file.display()
        ));
    }
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the declaration {}", file.display()))?;
    parse_declaration(&text, is_json(file))
        .map_err(|message| anyhow!("{}: {message}", file.display()))
}

fn is_json(file: &Path) -> bool {
    file.extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("json"))
}

/// Parses a declaration from TOML or JSON and checks it as the server
/// would; the error is a sentence for the terminal.
pub fn parse_declaration(text: &str, json: bool) -> Result<ServiceDeclaration, String> {
    if json {
        return cairn_api::parse_body(text.as_bytes());
    }
    let declaration: ServiceDeclaration =
        toml::from_str(text).map_err(|error| format!("invalid TOML declaration: {error}"))?;
    declaration.check()?;
    Ok(declaration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toml_declaration_parses() {
        let declaration = parse_declaration(
            r#"
            name = "shop"
            identity = "shop-svc"
            description = "Takes orders"
            owns = ["Shop.Order"]
            consumes = ["Billing.Invoice"]
            requests = ["Billing.Charge"]
            "#,
            false,
        )
        .unwrap();
        assert_eq!(declaration.name, "shop");
        assert_eq!(declaration.requests, ["Billing.Charge"]);
        assert!(declaration.answers.is_empty());
    }

    #[test]
    fn bad_toml_declarations_are_refused() {
        for (text, expected) in [
            (
                "name = \"shop\"\nidentity = \"s\"\ncolour = 1\n",
                "unknown field",
            ),
            (
                "name = \"shop\"\nidentity = \"s\"\nowns = \"A\"\n",
                "invalid TOML",
            ),
            (
                "name = \"shop\"\nidentity = \"s\"\nowns = [\"a..b\"]\n",
                "owns:",
            ),
            ("name = \"shop\nidentity", "invalid TOML"),
            ("identity = \"s\"\n", "name"),
        ] {
            let error = parse_declaration(text, false).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
