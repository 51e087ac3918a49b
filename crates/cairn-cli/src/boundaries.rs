//! `cairn boundaries`: the flow map between services — who owns, writes
//! and consumes which types, declared against observed — as a text table,
//! Mermaid, Graphviz DOT or JSON; and `cairn boundaries check`, a CI step
//! whose exit status says whether the declared boundaries hold (0: no
//! violation, 1: violations, one line each, 2: error). Both print the
//! server's `GET /v1/boundaries`; the rendering is pure and tested here.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;

use cairn_api::limits::BOUNDARIES_UNSEEN_FOR_MS_MAX;
use cairn_api::services::EdgeKind;
use cairn_api::BoundariesAnswer;

use crate::connection::{explain, ServerArg};

/// Exit status of `check` when the boundaries are violated.
const EXIT_VIOLATIONS: u8 = 1;
/// Exit status when the check could not be made.
const EXIT_ERROR: u8 = 2;

/// Options of `cairn boundaries`.
#[derive(clap::Args)]
pub struct BoundariesArgs {
    #[command(subcommand)]
    command: Option<BoundariesCommand>,
    /// How to print the map.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(flatten)]
    window: WindowArg,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(clap::Subcommand)]
enum BoundariesCommand {
    /// Exit 0 if the declared boundaries hold, 1 with one line per
    /// violation if not, 2 if the check cannot be made.
    Check {
        #[command(flatten)]
        window: WindowArg,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(clap::Args)]
struct WindowArg {
    /// The window: flows last seen longer ago do not count, and a
    /// declared flow unseen for this long is a violation (`7d`, `12h`,
    /// `30m`, `90s`, `500ms`; default 7 days).
    #[arg(long = "unseen-for", value_parser = parse_window_ms)]
    unseen_for_ms: Option<u64>,
}

/// How the map is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Services, edges and violations as text tables.
    Table,
    /// A Mermaid flowchart.
    Mermaid,
    /// A Graphviz digraph.
    Dot,
    /// The server's JSON answer.
    Json,
}

/// Runs `cairn boundaries` or `cairn boundaries check`.
pub async fn run(args: BoundariesArgs) -> ExitCode {
    let (check, window, server) = match args.command {
        Some(BoundariesCommand::Check { window, server }) => (true, window, server),
        None => (false, args.window, args.server),
    };
    let answer = match fetch(&server, window.unseen_for_ms).await {
        Ok(answer) => answer,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    if check {
        print!("{}", check_report(&answer));
        return if answer.violations.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_VIOLATIONS)
        };
    }
    let text = match args.format {
        Format::Table => table(&answer),
        Format::Mermaid => mermaid(&answer),
        Format::Dot => dot(&answer),
        Format::Json => match serde_json::to_string_pretty(&answer) {
            Ok(json) => json + "\n",
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(EXIT_ERROR);
            }
        },
    };
    print!("{text}");
    ExitCode::SUCCESS
}

async fn fetch(server: &ServerArg, unseen_for_ms: Option<u64>) -> anyhow::Result<BoundariesAnswer> {
    server
        .client()?
        .boundaries(unseen_for_ms)
        .await
        .map_err(explain)
}

/// Parses `7d`, `12h`, `30m`, `90s` or `500ms` into milliseconds.
fn parse_window_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 7d, 12h or 30m"))?;
    let window_ms = match unit {
        "ms" => value,
        "s" => value.saturating_mul(1_000),
        "m" => value.saturating_mul(60_000),
        "h" => value.saturating_mul(3_600_000),
        "d" => value.saturating_mul(86_400_000),
        _ => return Err(format!("{text:?}: the unit must be ms, s, m, h or d")),
    };
    if window_ms == 0 || window_ms > BOUNDARIES_UNSEEN_FOR_MS_MAX {
        return Err(format!("{text:?}: must be more than 0 and at most 400d"));
    }
    Ok(window_ms)
}

/// One line per violation, or `no violations`.
pub fn check_report(answer: &BoundariesAnswer) -> String {
    let mut text = String::new();
    if answer.violations.is_empty() {
        text.push_str("no violations\n");
    }
    for violation in &answer.violations {
        let _ = writeln!(text, "{}: {}", violation.rule.as_str(), violation.message);
    }
    text.push_str(&notes(answer));
    text
}

/// What the reader must know about how complete the map is.
fn notes(answer: &BoundariesAnswer) -> String {
    let mut text = String::new();
    if !answer.observing {
        text.push_str(
            "note: the server runs without --auth: there are no identities, so no flow is \
             observed and only the declarations are checked\n",
        );
    }
    if answer.observations_dropped > 0 {
        let _ = writeln!(
            text,
            "note: {} observations were dropped (the server's table of flows is full); the \
             observed flows are incomplete",
            answer.observations_dropped
        );
    }
    text
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

fn kind_text(kind: EdgeKind) -> &'static str {
    match kind {
        EdgeKind::Event => "event",
        EdgeKind::Request => "request",
    }
}

/// The map as text: services, edges, violations.
pub fn table(answer: &BoundariesAnswer) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "{:<24} {:<24} OWNS", "SERVICE", "IDENTITY");
    for view in &answer.services {
        let declaration = &view.declaration;
        let _ = writeln!(
            text,
            "{:<24} {:<24} {}",
            declaration.name,
            declaration.identity,
            declaration.owns.join(", ")
        );
    }
    text.push('\n');
    let _ = writeln!(
        text,
        "{:<24} {:<24} {:<32} {:<8} {:<9} SEEN",
        "FROM", "TO", "TYPE", "KIND", "DECLARED"
    );
    for edge in &answer.edges {
        let _ = writeln!(
            text,
            "{:<24} {:<24} {:<32} {:<8} {:<9} {}",
            edge.from,
            edge.to,
            edge.type_name,
            kind_text(edge.kind),
            yes_no(edge.declared),
            yes_no(edge.seen)
        );
    }
    text.push('\n');
    if answer.violations.is_empty() {
        text.push_str("no violations\n");
    } else {
        let _ = writeln!(text, "{} violations:", answer.violations.len());
        for violation in &answer.violations {
            let _ = writeln!(text, "  {}: {}", violation.rule.as_str(), violation.message);
        }
    }
    text.push_str(&notes(answer));
    text
}

/// Every node of the map: the services, then the other ends of edges
/// (identities no service declares), each once, in order.
fn nodes(answer: &BoundariesAnswer) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut nodes = Vec::new();
    let names = answer
        .services
        .iter()
        .map(|view| view.declaration.name.clone())
        .chain(
            answer
                .edges
                .iter()
                .flat_map(|edge| [edge.from.clone(), edge.to.clone()]),
        );
    for name in names {
        if seen.insert(name.clone()) {
            nodes.push(name);
        }
    }
    nodes
}

/// An edge's label: its type, with request edges and their state marked.
fn edge_label(edge: &cairn_api::EdgeView) -> String {
    let mut label = match edge.kind {
        EdgeKind::Event => edge.type_name.clone(),
        EdgeKind::Request => format!("request {}", edge.type_name),
    };
    match (edge.declared, edge.seen) {
        (true, true) => {}
        (true, false) => label.push_str(" (not seen)"),
        (false, _) => label.push_str(" (undeclared)"),
    }
    label
}

/// The map as a Mermaid flowchart: a solid arrow for a declared flow
/// seen, dotted for one not seen, thick for an undeclared one.
pub fn mermaid(answer: &BoundariesAnswer) -> String {
    let nodes = nodes(answer);
    let id = |name: &str| format!("n{}", nodes.iter().position(|n| n == name).unwrap_or(0));
    // Names are restricted to [A-Za-z0-9_.:-]; quotes keep Mermaid from
    // reading any of them as syntax.
    let quote = |text: &str| text.replace('"', "#quot;");
    let mut text = String::from("flowchart LR\n");
    for name in &nodes {
        let _ = writeln!(text, "  {}[\"{}\"]", id(name), quote(name));
    }
    for edge in &answer.edges {
        let arrow = match (edge.declared, edge.seen) {
            (true, true) => "-->",
            (true, false) => "-.->",
            (false, _) => "==>",
        };
        let _ = writeln!(
            text,
            "  {} {arrow}|\"{}\"| {}",
            id(&edge.from),
            quote(&edge_label(edge)),
            id(&edge.to)
        );
    }
    text
}

/// The map as a Graphviz digraph: dashed for a declared flow not seen,
/// red for an undeclared one.
pub fn dot(answer: &BoundariesAnswer) -> String {
    let quote = |text: &str| format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
    let mut text = String::from("digraph boundaries {\n  rankdir=LR;\n  node [shape=box];\n");
    for name in nodes(answer) {
        let _ = writeln!(text, "  {};", quote(&name));
    }
    for edge in &answer.edges {
        let style = match (edge.declared, edge.seen) {
            (true, true) => "style=solid",
            (true, false) => "style=dashed",
            (false, _) => "style=bold, color=red",
        };
        let _ = writeln!(
            text,
            "  {} -> {} [label={}, {style}];",
            quote(&edge.from),
            quote(&edge.to),
            quote(&edge_label(edge))
        );
    }
    text.push_str("}\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::services::{BoundaryRule, BoundaryViolation, EdgeView};

    fn answer() -> BoundariesAnswer {
        let edge = |from: &str, to: &str, type_name: &str, declared, seen| EdgeView {
            from: from.into(),
            to: to.into(),
            type_name: type_name.into(),
            kind: EdgeKind::Event,
            declared,
            seen,
        };
        BoundariesAnswer {
            services: Vec::new(),
            flows: Vec::new(),
            edges: vec![
                edge("shop", "billing", "Shop.Order", true, true),
                edge("shop", "shipping", "Shop.Order", true, false),
                edge("identity:rogue", "billing", "Shop.Order", false, true),
            ],
            violations: vec![BoundaryViolation {
                rule: BoundaryRule::UndeclaredWriter,
                message: "identity rogue wrote Shop.Order".into(),
                type_name: Some("Shop.Order".into()),
                service: None,
                identity: Some("rogue".into()),
            }],
            observing: true,
            observations_dropped: 0,
            unseen_for_ms: 1,
            now_ms: 1,
        }
    }

    #[test]
    fn windows_parse_with_units_and_bounds() {
        assert_eq!(parse_window_ms("7d"), Ok(7 * 86_400_000));
        assert_eq!(parse_window_ms("90s"), Ok(90_000));
        assert_eq!(parse_window_ms("500ms"), Ok(500));
        for bad in ["0d", "7", "7w", "d", "401d"] {
            assert!(parse_window_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mermaid_declares_each_node_once_and_marks_edges() {
        let text = mermaid(&answer());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "flowchart LR");
        let node_lines = lines.iter().filter(|line| line.contains("[\"")).count();
        assert_eq!(node_lines, 4, "{text}");
        assert!(text.contains("-->|\"Shop.Order\"|"), "{text}");
        assert!(text.contains("-.->|\"Shop.Order (not seen)\"|"), "{text}");
        assert!(text.contains("==>|\"Shop.Order (undeclared)\"|"), "{text}");
    }

    #[test]
    fn dot_is_one_balanced_digraph() {
        let text = dot(&answer());
        assert!(text.starts_with("digraph boundaries {\n"));
        assert!(text.ends_with("}\n"));
        assert_eq!(text.matches('{').count(), text.matches('}').count());
        assert_eq!(text.matches(" -> ").count(), 3);
        assert!(text.contains("\"identity:rogue\" -> \"billing\""), "{text}");
        assert_eq!(text.matches('"').count() % 2, 0);
    }

    #[test]
    fn the_check_report_has_one_line_per_violation() {
        let mut answer = answer();
        assert_eq!(
            check_report(&answer),
            "undeclared_writer: identity rogue wrote Shop.Order\n"
        );
        answer.violations.clear();
        assert_eq!(check_report(&answer), "no violations\n");
        answer.observing = false;
        assert!(check_report(&answer).contains("without --auth"));
    }
}
