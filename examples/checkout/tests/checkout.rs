//! End to end: a real Cairn server (in this process, with `--auth`), the
//! three services and the saga runner as separate processes of the real
//! `checkout` binary, each with its own identity.
//!
//! For every boundary of the saga in turn (each transition stored, and
//! each action or compensation returned before its outcome is stored), a
//! runner is started with `CHECKOUT_CRASH_AT=<boundary>`, four checkouts
//! are placed (a good card, a declined card, an address shipping never
//! answers, an address it answers on retry), the runner kills itself with
//! SIGKILL at that boundary, and a new runner finishes the sagas (the
//! rounds whose boundary cannot be reached by the shipping timeouts place
//! only the first two, to keep the run short).
//!
//! The oracle then reads the journals and the services' own records of
//! what they applied: every saga ended `completed` (good card, answered on
//! retry) or `compensated` (declined, never answered); no effect was
//! applied twice (one reservation, one charge, one booking per order at
//! most); each compensation ran exactly once (one release, one refund, one
//! `step_compensated` per compensated step), in reverse order of the steps.

use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use cairn_client::saga::facts::TransitionKind;
use cairn_client::{
    AccessToken, Client, ClientOptions, Hash, Pattern, Permissions, SagaJournal, SagaState,
    TokenCreateRequest,
};
use cairn_example_checkout::effects::{read_effects, Effect};
use cairn_example_checkout::limits::{SAGA_NAME, SAGA_VERSION};
use cairn_example_checkout::saga::Checkout;
use cairn_store::postgres::testing::TestDatabase;
use cairn_store::{EmbeddedOptions, EmbeddedStore, PostgresOptions, PostgresStore, Store};
use tokio_util::sync::CancellationToken;

/// Longest time the test waits for any one thing.
const WAIT_MAX: Duration = Duration::from_secs(60);
/// Pause between two looks while waiting.
const WAIT_STEP: Duration = Duration::from_millis(50);
/// How long shipping gets per booking in the test: far beyond a booking's
/// round trip even on a loaded machine (a good booking must never time
/// out), so the rounds that need a timeout are the slow ones.
const SHIPPING_TIMEOUT_MS: u64 = 3_000;
/// The runner's lease: how soon a restarted runner takes over.
const RUNNER_LEASE_MS: u64 = 1_000;
/// A lease far longer than the test waits ([`WAIT_MAX`]): a delivery
/// leased to a killed runner is not delivered again during the test.
const RUNNER_LEASE_LONG_MS: u64 = 600_000;

/// Every boundary a runner is killed at, one round each.
const BOUNDARIES: &[&str] = &[
    "written:step_attempted:reserve_stock",
    "returned:action:reserve_stock",
    "written:step_succeeded:reserve_stock",
    "written:step_attempted:charge_payment",
    "returned:action:charge_payment",
    "written:step_succeeded:charge_payment",
    "written:step_failed:charge_payment",
    "written:step_attempted:book_shipping",
    "returned:action:book_shipping",
    "written:step_timed_out:book_shipping",
    "written:step_succeeded:book_shipping",
    "written:compensation_attempted:charge_payment",
    "returned:compensation:charge_payment",
    "written:step_compensated:charge_payment",
    "written:compensation_attempted:reserve_stock",
    "returned:compensation:reserve_stock",
    "written:step_compensated:reserve_stock",
    "written:completed",
    "written:compensated",
];

/// The four checkouts of a round and how each must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Good,
    Declined,
    NeverShipped,
    ShippedOnRetry,
}

/// The checkouts of the round that kills the runner at `boundary`: those
/// that time out shipping only where the boundary concerns shipping or
/// the compensation of the payment (which only they reach).
fn kinds_for(boundary: &str) -> &'static [Kind] {
    if boundary.contains("book_shipping")
        || (boundary.contains("charge_payment") && boundary.contains("compensat"))
    {
        &[
            Kind::Good,
            Kind::Declined,
            Kind::NeverShipped,
            Kind::ShippedOnRetry,
        ]
    } else {
        &[Kind::Good, Kind::Declined]
    }
}

impl Kind {
    fn checkout(self, order: String) -> Checkout {
        let (card, address) = match self {
            Kind::Good => ("4242424242424242", "1 Main Street"),
            Kind::Declined => ("4000000000000002", "1 Main Street"),
            Kind::NeverShipped => ("4242424242424242", "nowhere"),
            Kind::ShippedOnRetry => ("4242424242424242", "flaky"),
        };
        Checkout {
            order,
            items: serde_json::json!({"tea": 2}),
            card: card.to_string(),
            amount_cents: 1_250,
            address: address.to_string(),
        }
    }

    fn expected_state(self) -> SagaState {
        match self {
            Kind::Good | Kind::ShippedOnRetry => SagaState::Completed,
            Kind::Declined | Kind::NeverShipped => SagaState::Compensated,
        }
    }

    /// How many times each effect must have been applied for the order
    /// (bookings left unanswered are not effects: a runner killed between
    /// storing an attempt and sending its command never sends it).
    fn expected_effects(self) -> BTreeMap<&'static str, usize> {
        let counts: &[(&str, usize)] = match self {
            Kind::Good | Kind::ShippedOnRetry => &[("reserve", 1), ("charge", 1), ("book", 1)],
            Kind::Declined => &[("reserve", 1), ("decline", 1), ("release", 1)],
            Kind::NeverShipped => &[("reserve", 1), ("charge", 1), ("refund", 1), ("release", 1)],
        };
        counts.iter().copied().collect()
    }
}

/// A Cairn server in this process on a free loopback port, with `--auth`:
/// on the embedded store, or on a fresh PostgreSQL database with
/// `CAIRN_TEST_BACKEND=postgres`.
struct Cairn {
    url: String,
    admin_token: String,
    shutdown: CancellationToken,
    _data: tempfile::TempDir,
    _database: Option<TestDatabase>,
}

impl Cairn {
    async fn start() -> anyhow::Result<Cairn> {
        let data = tempfile::tempdir()?;
        let store_dir = data.path().join("store");
        let on_postgres = std::env::var("CAIRN_TEST_BACKEND").as_deref() == Ok("postgres");
        let database = if on_postgres {
            TestDatabase::create().await
        } else {
            None
        };
        let mut options = cairn_server::NodeOptions::embedded(store_dir.clone());
        let admin_token = match &database {
            Some(database) => {
                let store =
                    PostgresStore::connect(&database.url(), PostgresOptions::default()).await?;
                let token = create_admin(&store).await?;
                store.close();
                options.storage = cairn_server::Storage::Postgres {
                    url: database.url(),
                    options: PostgresOptions::default(),
                };
                token
            }
            None => create_admin_offline(store_dir).await?,
        };
        options.auth = true;
        let node = options.build().await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shutdown = CancellationToken::new();
        tokio::spawn(node.run(listener, shutdown.clone().cancelled_owned()));
        Ok(Cairn {
            url,
            admin_token,
            shutdown,
            _data: data,
            _database: database,
        })
    }

    fn client(&self, token: &str) -> anyhow::Result<Client> {
        Ok(Client::remote(ClientOptions {
            access_token: Some(AccessToken::new(token.to_string())),
            ..ClientOptions::new([self.url.as_str()])
        })?)
    }

    /// Creates identity `name` over HTTP with the admin's token; its token.
    async fn create_identity(
        &self,
        name: &str,
        permissions: Permissions,
    ) -> anyhow::Result<String> {
        let request = TokenCreateRequest {
            name: name.to_owned(),
            permissions,
            expires_in_s: None,
            rate_per_s: None,
            write_rate_per_s: None,
        };
        Ok(self
            .client(&self.admin_token)?
            .create_token(&request)
            .await?
            .token)
    }
}

impl Drop for Cairn {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Creates the admin before the server starts, as `cairn tokens create
/// --data DIR --name admin --admin` does; its token.
async fn create_admin_offline(dir: PathBuf) -> anyhow::Result<String> {
    let store =
        tokio::task::spawn_blocking(move || EmbeddedStore::open(&dir, EmbeddedOptions::default()))
            .await??;
    let token = create_admin(&store).await?;
    tokio::task::spawn_blocking(move || store.close()).await?;
    Ok(token)
}

/// Creates the admin identity in `store`; its token.
async fn create_admin(store: &dyn cairn_store::IdentityStore) -> anyhow::Result<String> {
    let request = TokenCreateRequest {
        name: "admin".to_owned(),
        permissions: Permissions {
            admin: true,
            ..Permissions::default()
        },
        expires_in_s: None,
        rate_per_s: None,
        write_rate_per_s: None,
    };
    let created = cairn_server::auth::identities::create_identity(store, &request)
        .await
        .map_err(|error| anyhow::anyhow!("{}: {}", error.code.as_str(), error.message))?;
    Ok(created.token)
}

fn patterns(texts: &[&str]) -> anyhow::Result<Vec<Pattern>> {
    texts
        .iter()
        .map(|text| Pattern::parse(text).map_err(|error| anyhow::anyhow!("{text}: {error}")))
        .collect()
}

fn permissions(write: &[&str], read: &[&str], subscribe: &[&str]) -> anyhow::Result<Permissions> {
    Ok(Permissions {
        write: patterns(write)?,
        read: patterns(read)?,
        subscribe: patterns(subscribe)?,
        ..Permissions::default()
    })
}

/// One process of the `checkout` binary; killed if still running when
/// dropped.
struct Process {
    arguments: Vec<String>,
    environment: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Process {
    fn new(arguments: &[&str], token: &str, log: PathBuf) -> Process {
        Process {
            arguments: arguments
                .iter()
                .map(|argument| argument.to_string())
                .collect(),
            environment: vec![("CAIRN_TOKEN".to_string(), token.to_string())],
            log,
            child: None,
        }
    }

    fn start(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "running already");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_checkout"))
            .args(&self.arguments)
            .envs(self.environment.iter().map(|(name, value)| (name, value)))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start checkout")?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits (at most [`WAIT_MAX`]) for the process to exit by itself.
    async fn exited(&mut self) -> anyhow::Result<ExitStatus> {
        let child = self.child.as_mut().context("not running")?;
        let deadline = tokio::time::Instant::now() + WAIT_MAX;
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the process did not exit in time"
            );
            tokio::time::sleep(WAIT_STEP).await;
        }
    }

    /// Sends SIGTERM and waits for the exit.
    async fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        let child = self.child.as_ref().context("not running")?;
        let pid = libc::pid_t::try_from(child.id())?;
        // SAFETY: signals our own child, still unreaped (so its pid cannot
        // have been reused).
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        anyhow::ensure!(sent == 0, "cannot send SIGTERM");
        self.exited().await
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `check` answers `Some`, at most [`WAIT_MAX`].
async fn eventually<T, C, Fut>(what: &str, mut check: C) -> anyhow::Result<T>
where
    C: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + WAIT_MAX;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(WAIT_STEP).await;
    }
}

/// The runner's command line.
fn runner_arguments(url: &str, lease_ms: u64) -> Vec<String> {
    [
        "--cairn",
        url,
        "runner",
        "--shipping-timeout-ms",
        &SHIPPING_TIMEOUT_MS.to_string(),
        "--lease-ms",
        &lease_ms.to_string(),
    ]
    .iter()
    .map(|argument| argument.to_string())
    .collect()
}

/// The identities and the three services' processes of a test.
struct Services {
    runner_token: String,
    front_token: String,
    processes: Vec<Process>,
}

impl Services {
    /// Creates the identities and starts stock, payment and shipping, each
    /// recording its effects in `work`.
    async fn start(cairn: &Cairn, work: &Path) -> anyhow::Result<Services> {
        let runner_token = cairn
            .create_identity(
                "checkout-runner",
                permissions(
                    &[
                        "Saga.*",
                        "Checkout.StockCommand",
                        "Checkout.PaymentCommand",
                        "Checkout.ShippingCommand",
                    ],
                    &["Saga.*", "Checkout.*"],
                    &["saga.checkout.*"],
                )?,
            )
            .await?;
        let front_token = cairn
            .create_identity(
                "checkout-front",
                permissions(&["Saga.Started"], &["Saga.*"], &[])?,
            )
            .await?;
        let mut services = Vec::new();
        for (service, command, reply) in [
            ("stock", "Checkout.StockCommand", "Checkout.StockReply"),
            (
                "payment",
                "Checkout.PaymentCommand",
                "Checkout.PaymentReply",
            ),
            (
                "shipping",
                "Checkout.ShippingCommand",
                "Checkout.ShippingReply",
            ),
        ] {
            let token = cairn
                .create_identity(
                    &format!("checkout-{service}"),
                    permissions(&[reply], &[command], &[&format!("checkout-{service}")])?,
                )
                .await?;
            let effects = work.join(format!("{service}.jsonl"));
            let mut process = Process::new(
                &[
                    "--cairn",
                    &cairn.url,
                    "service",
                    service,
                    "--effects",
                    effects.to_str().context("a UTF-8 path")?,
                ],
                &token,
                work.join(format!("{service}.log")),
            );
            process.start()?;
            services.push(process);
        }
        Ok(Services {
            runner_token,
            front_token,
            processes: services,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_saga_ends_completed_or_compensated_across_runner_crashes() -> anyhow::Result<()> {
    let cairn = Cairn::start().await?;
    let work = tempfile::tempdir()?;
    let services = Services::start(&cairn, work.path()).await?;
    let (runner_token, front_token) = (&services.runner_token, &services.front_token);
    let front = cairn.client(front_token)?;
    let runner_arguments = runner_arguments(&cairn.url, RUNNER_LEASE_MS);
    let runner_arguments: Vec<&str> = runner_arguments.iter().map(String::as_str).collect();

    let mut placed: Vec<(Hash, Kind, String)> = Vec::new();
    let outcome = async {
        for (round, boundary) in BOUNDARIES.iter().enumerate() {
            let mut crashing = Process::new(
                &runner_arguments,
                runner_token,
                work.path().join("runner.log"),
            );
            crashing
                .environment
                .push(("CHECKOUT_CRASH_AT".to_string(), boundary.to_string()));
            crashing.start()?;
            eventually("the saga is defined", || async {
                Ok(front.sagas().definition(SAGA_NAME, SAGA_VERSION).await.ok())
            })
            .await?;
            let mut round_ids = Vec::new();
            for &kind in kinds_for(boundary) {
                let order = format!("r{round}-{kind:?}");
                let id = place(&front, kind, &order).await?;
                round_ids.push(id);
                placed.push((id, kind, order));
            }
            let status = crashing
                .exited()
                .await
                .with_context(|| format!("the runner did not reach {boundary}"))?;
            anyhow::ensure!(
                status.signal() == Some(libc::SIGKILL),
                "the runner for {boundary} ended with {status}, not SIGKILL"
            );
            let mut runner = Process::new(
                &runner_arguments,
                runner_token,
                work.path().join("runner.log"),
            );
            runner.start()?;
            for id in &round_ids {
                eventually(&format!("saga {id} of round {boundary} ends"), || async {
                    let journal = front.sagas().journal(id).await?;
                    Ok(journal.state().is_terminal().then_some(()))
                })
                .await?;
            }
            let status = runner.stop().await?;
            anyhow::ensure!(status.success(), "the runner stopped with {status}");
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(error) = outcome {
        print_logs(work.path(), &services);
        return Err(error);
    }

    check_oracle(&front, work.path(), &placed).await
}

/// Starts the checkout saga for `order`, of kind `kind`; its id.
async fn place(front: &Client, kind: Kind, order: &str) -> anyhow::Result<Hash> {
    let checkout = kind.checkout(order.to_string());
    Ok(front
        .sagas()
        .start(
            SAGA_NAME,
            SAGA_VERSION,
            order.to_string(),
            serde_json::to_value(&checkout)?,
        )
        .await?)
}

/// Prints the services' logs and the end of the runners' log, after a
/// failure.
fn print_logs(work: &Path, services: &Services) {
    let runner_log = std::fs::read_to_string(work.join("runner.log")).unwrap_or_default();
    let tail: Vec<&str> = runner_log.lines().rev().take(60).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    for service in &services.processes {
        eprintln!("--- {}:\n{}", service.log.display(), service.log_text());
    }
    eprintln!("--- runner log (end):\n{}", tail.join("\n"));
}

/// A step's timeout is a durable timer: the runner that stored a booking
/// attempt is killed right after, its delivery stays leased far longer
/// than the test waits, and the deadline's timer still wakes the other
/// runner, which times the attempt out and finishes the saga (the booking
/// is never answered: compensated, refund before release).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_times_out_by_its_durable_timer_while_its_runner_is_gone() -> anyhow::Result<()> {
    let cairn = Cairn::start().await?;
    let work = tempfile::tempdir()?;
    let services = Services::start(&cairn, work.path()).await?;
    let front = cairn.client(&services.front_token)?;
    let admin = cairn.client(&cairn.admin_token)?;
    let arguments = runner_arguments(&cairn.url, RUNNER_LEASE_LONG_MS);
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    let runner_log = work.path().join("runner.log");
    let order = "timer-1".to_string();
    let outcome = async {
        let mut crashing = Process::new(&arguments, &services.runner_token, runner_log.clone());
        crashing.environment.push((
            "CHECKOUT_CRASH_AT".to_string(),
            "written:step_attempted:book_shipping".to_string(),
        ));
        crashing.start()?;
        eventually("the saga is defined", || async {
            Ok(front.sagas().definition(SAGA_NAME, SAGA_VERSION).await.ok())
        })
        .await?;
        let id = place(&front, Kind::NeverShipped, &order).await?;
        let status = crashing
            .exited()
            .await
            .context("the runner did not crash")?;
        anyhow::ensure!(
            status.signal() == Some(libc::SIGKILL),
            "the runner ended with {status}"
        );
        let mut runner = Process::new(&arguments, &services.runner_token, runner_log.clone());
        runner.start()?;
        let journal = eventually("the saga ends", || async {
            let journal = front.sagas().journal(&id).await?;
            Ok(journal.state().is_terminal().then_some(journal))
        })
        .await?;
        let first_outcome = journal
            .chain
            .iter()
            .find(|transition| {
                transition.value.step_name.as_deref() == Some("book_shipping")
                    && transition.value.attempt == Some(1)
                    && transition.value.kind != TransitionKind::StepAttempted
            })
            .map(|transition| transition.value.kind);
        anyhow::ensure!(
            first_outcome == Some(TransitionKind::StepTimedOut),
            "the first booking attempt ended {first_outcome:?}: {}",
            journal.to_json()
        );
        let deadlines: Vec<_> = front
            .successors::<cairn_client::saga::facts::StepDeadlineFact>(&id)
            .role("saga")
            .all()
            .await?;
        anyhow::ensure!(
            !deadlines.is_empty(),
            "no Saga.StepDeadline was written: the timeout did not come from the timer"
        );
        eventually("every deadline timer is deleted", || async {
            let timers = admin.list_timers().await?;
            Ok((!timers
                .iter()
                .any(|timer| timer.name.starts_with("saga-deadline.")))
            .then_some(()))
        })
        .await?;
        runner.stop().await?;
        anyhow::Ok(id)
    }
    .await;
    let id = match outcome {
        Ok(id) => id,
        Err(error) => {
            print_logs(work.path(), &services);
            return Err(error);
        }
    };
    check_oracle(&front, work.path(), &[(id, Kind::NeverShipped, order)]).await
}

/// The oracle: states, effects counted from the services' own records,
/// compensations once and in reverse order.
async fn check_oracle(
    client: &Client,
    work: &Path,
    placed: &[(Hash, Kind, String)],
) -> anyhow::Result<()> {
    let mut effects: Vec<Effect> = Vec::new();
    for service in ["stock", "payment", "shipping"] {
        effects.extend(read_effects(&work.join(format!("{service}.jsonl")))?);
    }
    for (id, kind, order) in placed {
        let journal = client.sagas().journal(id).await?;
        anyhow::ensure!(
            journal.state() == kind.expected_state(),
            "{order} ({kind:?}) ended {}, not {}: {}",
            journal.state().as_str(),
            kind.expected_state().as_str(),
            journal.to_json()
        );
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for effect in effects
            .iter()
            .filter(|effect| effect.order == *order && effect.kind != "ignore")
        {
            *counts.entry(effect.kind.as_str()).or_default() += 1;
        }
        anyhow::ensure!(
            counts == kind.expected_effects(),
            "{order} ({kind:?}): effects {counts:?}, expected {:?}",
            kind.expected_effects()
        );
        check_compensations(&journal, *kind, order, &effects)?;
    }
    Ok(())
}

/// Each compensated step once in the journal, in reverse order of the
/// steps, and the services applied them in that order too.
fn check_compensations(
    journal: &SagaJournal,
    kind: Kind,
    order: &str,
    effects: &[Effect],
) -> anyhow::Result<()> {
    let compensated: Vec<&str> = journal
        .chain
        .iter()
        .filter(|transition| transition.value.kind == TransitionKind::StepCompensated)
        .filter_map(|transition| transition.value.step_name.as_deref())
        .collect();
    let expected: &[&str] = match kind {
        Kind::Good | Kind::ShippedOnRetry => &[],
        Kind::Declined => &["reserve_stock"],
        Kind::NeverShipped => &["charge_payment", "reserve_stock"],
    };
    anyhow::ensure!(
        compensated == expected,
        "{order}: compensated {compensated:?}, expected {expected:?}"
    );
    if kind == Kind::NeverShipped {
        let at = |effect_kind: &str| {
            effects
                .iter()
                .find(|effect| effect.order == order && effect.kind == effect_kind)
                .map(|effect| effect.at_us)
        };
        let (refund, release) = (at("refund"), at("release"));
        anyhow::ensure!(
            refund.is_some() && release.is_some() && refund < release,
            "{order}: the refund ({refund:?}) must come before the release ({release:?})"
        );
    }
    Ok(())
}
