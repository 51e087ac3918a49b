//! The run of `cairn demo`: set up Cairn with an identity per service,
//! start the card provider and the services, drive the customers while the
//! schedule's faults happen, print a progress line, then drain and judge
//! the invariants from the facts.
//!
//! Every child is stopped by PID on every way out (see [`Children`]); the
//! data directory is a fresh temporary one unless `--data` names one, and
//! a temporary one is removed after a run whose invariants all hold (kept,
//! and printed, otherwise, for the logs).

use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cairn_client::{
    AccessToken, Client, ClientOptions, Pattern, Permissions, TokenCreateRequest, TypedFact,
};
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::customers::{self, CustomerCounts};
use crate::error::DemoError;
use crate::facts::{
    Menu, MenuItem, MenuItemWithdrawn, NotificationSent, OrderAccepted, OrderPlaced, OrderServed,
    OutOfStock, PaymentCaptured, PaymentFailed, PaymentRefunded, PlaceOrder, PreparationClaimed,
    RestockDue, StockReserved,
};
use crate::invariants::{self, report_lines, CLAIMED_TYPE};
use crate::limits::{
    CAIRN_START_TIMEOUT, DRAIN_TIMEOUT, DURATION_MAX, DURATION_MIN, ORDERS_PER_S,
    PROGRESS_INTERVAL, PROGRESS_READ_TIMEOUT, RESTART_DELAY, RESTOCK_AT_PER_MILLE,
};
use crate::observer::Observer;
use crate::processes::{Children, ServiceLaunch};
use crate::provider::CardProvider;
use crate::schedule::{Fault, Schedule, SERVICES};
use crate::services::{fulfilment, notifications, orders, payments, stock};

/// How to run the demo.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// How long customers order.
    pub duration: Duration,
    /// The seed of the schedule and of the customers' choices.
    pub seed: u64,
    /// Where Cairn listens.
    pub listen: String,
    /// Where everything is kept (a new temporary directory if `None`).
    pub data: Option<PathBuf>,
    /// Print the schedule and stop.
    pub schedule_only: bool,
    /// The `cairn` binary to start Cairn and the services from.
    pub executable: PathBuf,
}

/// Something that happens later in the run.
enum Pending {
    RestartService(&'static str),
    RestartCairn,
    OutageOver,
}

/// Runs the demo; `Ok(true)` when every invariant holds.
pub async fn run(options: DemoOptions) -> Result<bool, DemoError> {
    if options.duration < DURATION_MIN || options.duration > DURATION_MAX {
        return Err(DemoError::InvalidArgument(format!(
            "--duration must be from {} s to {} s (every kind of fault needs room)",
            DURATION_MIN.as_secs(),
            DURATION_MAX.as_secs()
        )));
    }
    let schedule = Schedule::new(options.seed, options.duration);
    println!(
        "cairn demo: a coffee shop of {} services on Cairn, {} s, seed {}",
        SERVICES.len(),
        options.duration.as_secs(),
        options.seed
    );
    println!("fault schedule (the same seed gives the same schedule):");
    for line in schedule.lines() {
        println!("{line}");
    }
    if options.schedule_only {
        return Ok(true);
    }
    // An occupied port is refused before anything starts.
    let listener =
        std::net::TcpListener::bind(&options.listen).map_err(|source| DemoError::AddressInUse {
            address: options.listen.clone(),
            source,
        })?;
    drop(listener);

    let (data_dir, temporary) = match &options.data {
        Some(path) => (path.clone(), None),
        None => {
            let temporary = tempfile::Builder::new()
                .prefix("cairn-demo-")
                .tempdir()
                .map_err(|source| DemoError::DataDirectory {
                    path: std::env::temp_dir(),
                    source,
                })?;
            (temporary.path().to_owned(), Some(temporary))
        }
    };
    let logs_dir = data_dir.join("logs");
    std::fs::create_dir_all(&logs_dir).map_err(|source| DemoError::DataDirectory {
        path: logs_dir.clone(),
        source,
    })?;
    let kept = if temporary.is_some() {
        "a new temporary directory, removed if every invariant holds; keep it with --data DIR"
    } else {
        "kept"
    };
    println!("data and logs: {} ({kept})", data_dir.display());

    let mut children = Children::new(
        options.executable.clone(),
        logs_dir,
        data_dir.join("cairn"),
        options.listen.clone(),
    );
    let outcome = run_with_children(&options, &schedule, &data_dir, &mut children).await;
    if outcome.is_ok() {
        children.stop_all().await;
    } else {
        // Interrupted or failed: stop at once (a Ctrl-C reached the
        // children too, and Cairn may be gone, so a graceful stop would
        // only wait). Every service is crash-safe by design.
        children.kill_all();
    }
    let passed = outcome?;
    // The report's last line stays the last line of standard output.
    match temporary {
        Some(temporary) if passed => drop(temporary),
        Some(temporary) => {
            let kept = temporary.keep();
            eprintln!("kept {} for its logs", kept.display());
        }
        None => {}
    }
    Ok(passed)
}

async fn run_with_children(
    options: &DemoOptions,
    schedule: &Schedule,
    data_dir: &std::path::Path,
    children: &mut Children,
) -> Result<bool, DemoError> {
    let mut interrupt = signal(SignalKind::interrupt()).map_err(DemoError::Signals)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(DemoError::Signals)?;
    let interrupted = async move {
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    };
    tokio::pin!(interrupted);
    tokio::select! {
        reason = &mut interrupted => Err(DemoError::Interrupted(reason)),
        outcome = run_cafe(options, schedule, data_dir, children) => outcome,
    }
}

/// Permissions reading and writing these types, subscribing these names.
fn permissions(
    read: &[&str],
    write: &[&str],
    subscribe: &[&str],
) -> Result<Permissions, DemoError> {
    let patterns = |names: &[&str]| {
        names
            .iter()
            .map(|name| Pattern::parse(name).map_err(|error| DemoError::Cairn(error.to_string())))
            .collect::<Result<Vec<Pattern>, DemoError>>()
    };
    Ok(Permissions {
        read: patterns(read)?,
        write: patterns(write)?,
        subscribe: patterns(subscribe)?,
        ..Permissions::default()
    })
}

/// Each service's permissions: what it reads, writes and consumes, no more.
fn service_permissions(service: &str) -> Result<Permissions, DemoError> {
    match service {
        "orders" => permissions(
            &[PlaceOrder::TYPE_NAME, OrderAccepted::TYPE_NAME],
            &[OrderAccepted::TYPE_NAME, OrderPlaced::TYPE_NAME],
            &[orders::SUBSCRIPTION],
        ),
        "payments" => {
            // The fulfilment saga: its runner reads every `Saga.*` type it
            // subscribes to, and writes the journal.
            let saga_subscriptions = format!(
                "saga.{}.v{}.*",
                fulfilment::SAGA_NAME,
                fulfilment::SAGA_VERSION
            );
            let mut write = vec![
                PaymentCaptured::TYPE_NAME,
                PaymentFailed::TYPE_NAME,
                PaymentRefunded::TYPE_NAME,
            ];
            write.extend(fulfilment::saga_types());
            permissions(
                &[
                    OrderPlaced::TYPE_NAME,
                    StockReserved::TYPE_NAME,
                    OutOfStock::TYPE_NAME,
                    "Saga.*",
                ],
                &write,
                &[payments::SUBSCRIPTION, &saga_subscriptions],
            )
        }
        "stock" => permissions(
            &[PaymentCaptured::TYPE_NAME, RestockDue::TYPE_NAME],
            &[
                Menu::TYPE_NAME,
                MenuItem::TYPE_NAME,
                MenuItemWithdrawn::TYPE_NAME,
                StockReserved::TYPE_NAME,
                OutOfStock::TYPE_NAME,
                // Setting a timer needs write on the type it will write.
                RestockDue::TYPE_NAME,
            ],
            &[stock::SUBSCRIPTION, stock::RESTOCK_SUBSCRIPTION],
        ),
        "kitchen-1" | "kitchen-2" => permissions(
            // A claim names the bid, which the cook must be able to read.
            &[StockReserved::TYPE_NAME, PreparationClaimed::TYPE_NAME],
            &[
                PreparationClaimed::TYPE_NAME,
                OrderServed::TYPE_NAME,
                CLAIMED_TYPE,
            ],
            &[service],
        ),
        _ => {
            let subscriptions: Vec<&str> = notifications::SUBSCRIPTIONS
                .iter()
                .map(|(name, _)| *name)
                .collect();
            permissions(
                &[
                    OrderServed::TYPE_NAME,
                    PaymentRefunded::TYPE_NAME,
                    PaymentFailed::TYPE_NAME,
                ],
                &[NotificationSent::TYPE_NAME],
                &subscriptions,
            )
        }
    }
}

/// The customers' permissions: ask for orders, read answers and the menu.
fn customer_permissions() -> Result<Permissions, DemoError> {
    permissions(
        &[
            OrderAccepted::TYPE_NAME,
            Menu::TYPE_NAME,
            MenuItem::TYPE_NAME,
            MenuItemWithdrawn::TYPE_NAME,
        ],
        &[PlaceOrder::TYPE_NAME],
        &[],
    )
}

fn client_with(url: &str, token: &str) -> Result<Client, DemoError> {
    let access_token = AccessToken::new(token);
    Ok(Client::remote(ClientOptions {
        access_token: Some(access_token),
        ..ClientOptions::new([url])
    })?)
}

/// Waits until Cairn answers, or fails if its process ends or it takes
/// too long.
async fn wait_for_cairn(admin: &Client, children: &mut Children) -> Result<(), DemoError> {
    let deadline = Instant::now() + CAIRN_START_TIMEOUT;
    loop {
        if let Some(status) = children.cairn_exited() {
            let log = std::fs::read_to_string(children.log_path("cairn")).unwrap_or_default();
            let last_lines: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(DemoError::Cairn(format!(
                "`cairn serve` ended ({status}): {}",
                last_lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )));
        }
        if tokio::time::timeout(Duration::from_secs(1), admin.log_last_seq())
            .await
            .is_ok_and(|answer| answer.is_ok())
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(DemoError::Cairn(format!(
                "no answer within {} s",
                CAIRN_START_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn elapsed_text(started: Instant) -> String {
    format!("[{:>6.1} s]", started.elapsed().as_secs_f64())
}

async fn run_cafe(
    options: &DemoOptions,
    schedule: &Schedule,
    data_dir: &std::path::Path,
    children: &mut Children,
) -> Result<bool, DemoError> {
    let url = format!("http://{}", options.listen);
    let admin_token = children.create_admin_token()?;
    children.start_cairn()?;
    let admin = client_with(&url, &admin_token)?;
    wait_for_cairn(&admin, children).await?;
    crate::schemas::register(&admin).await?;

    let shutdown = CancellationToken::new();
    let _stop_provider = shutdown.clone().drop_guard();
    let provider = CardProvider::start(options.seed, shutdown.clone()).await?;
    // Croissants for about a quarter of the run's croissant orders: they
    // sell out early, and customers who read the menu before still order
    // them (to be refunded).
    let expected_orders = options.duration.as_secs() * ORDERS_PER_S;
    let croissants = (expected_orders / 20).max(2);
    // The croissant delivery: the instant of stock's restock timer.
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let restock_at_ms = u64::try_from(
        (since_epoch + options.duration * RESTOCK_AT_PER_MILLE as u32 / 1_000).as_millis(),
    )
    .unwrap_or(u64::MAX);
    for service in SERVICES {
        let created = admin
            .create_token(&TokenCreateRequest {
                name: service.to_owned(),
                permissions: service_permissions(service)?,
                expires_in_s: None,
                rate_per_s: None,
                write_rate_per_s: None,
            })
            .await?;
        let arguments = vec![
            "--cairn".to_owned(),
            url.clone(),
            "--data".to_owned(),
            data_dir.join(service).display().to_string(),
            "--provider".to_owned(),
            provider.url(),
            "--croissants".to_owned(),
            croissants.to_string(),
            "--restock-at-ms".to_owned(),
            restock_at_ms.to_string(),
        ];
        children.start_service(
            service,
            ServiceLaunch {
                arguments,
                access_token: created.token,
            },
        )?;
    }
    let customer_token = admin
        .create_token(&TokenCreateRequest {
            name: "customers".to_owned(),
            permissions: customer_permissions()?,
            expires_in_s: None,
            rate_per_s: None,
            write_rate_per_s: None,
        })
        .await?
        .token;
    println!(
        "watch it: http://{}/ui/  (admin token: {admin_token})",
        options.listen
    );
    println!(
        "services: {}; logs in {}",
        SERVICES.join(", "),
        children.logs_dir().display()
    );

    let counts = Arc::new(CustomerCounts::default());
    let customers_stop = CancellationToken::new();
    let customers = tokio::spawn(customers::run(
        client_with(&url, &customer_token)?,
        options.seed,
        customers_stop.clone(),
        Arc::clone(&counts),
    ));
    let mut observer = Observer::new(admin.clone());
    let started = Instant::now();
    let terminal = std::io::stdout().is_terminal();
    let mut faults = schedule.faults.iter().peekable();
    let mut pending: Vec<(Duration, Pending)> = Vec::new();
    let mut last_line_at = Duration::ZERO;
    let mut restarts_unplanned = 0u32;
    let finish_line = |line: &str| {
        if terminal {
            print!("\r\x1b[2K");
        }
        println!("{line}");
    };

    // The run: one tick per interval, bounded by the duration.
    while started.elapsed() < options.duration {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = started.elapsed();
        while let Some(scheduled) = faults.next_if(|scheduled| scheduled.at <= now) {
            let what = match &scheduled.fault {
                Fault::KillService { service } => {
                    let pid = children.kill_service(service);
                    pending.push((now + RESTART_DELAY, Pending::RestartService(service)));
                    format!("SIGKILL {service} (pid {})", pid.unwrap_or_default())
                }
                Fault::ProviderOutage { length } => {
                    provider.set_outage(true);
                    pending.push((now + *length, Pending::OutageOver));
                    format!("card provider outage for {:.1} s", length.as_secs_f64())
                }
                Fault::KillCairn => {
                    let pid = children.kill_cairn();
                    pending.push((now + RESTART_DELAY, Pending::RestartCairn));
                    format!("kill -9 Cairn (pid {})", pid.unwrap_or_default())
                }
            };
            finish_line(&format!("{} fault: {what}", elapsed_text(started)));
        }
        run_pending(
            &mut pending,
            now,
            children,
            &provider,
            started,
            &finish_line,
        )?;
        for (service, status) in children.exited_services() {
            restarts_unplanned += 1;
            finish_line(&format!(
                "{} {service} ended by itself ({status}); starting it again (see its log)",
                elapsed_text(started)
            ));
            if restarts_unplanned > 20 {
                return Err(DemoError::Cairn(format!(
                    "{service} keeps ending; see {}",
                    children.log_path(service).display()
                )));
            }
            children.restart_service(service)?;
        }
        if now >= last_line_at + PROGRESS_INTERVAL {
            last_line_at = now;
            let _ = tokio::time::timeout(PROGRESS_READ_TIMEOUT, observer.read()).await;
            let line = progress_line(started, &observer, &counts, &provider);
            if terminal {
                print!("\r\x1b[2K{line}");
                let _ = std::io::stdout().flush();
            } else if now.as_secs() % 5 == 0 {
                println!("{line}");
            }
        }
    }
    customers_stop.cancel();
    // Faults still pending (a restart, the end of an outage) happen now.
    for (_, action) in pending.drain(..) {
        apply(action, children, &provider)?;
    }
    wait_for_cairn(&admin, children).await?;
    finish_line(&format!(
        "{} customers stop ordering; waiting for the last orders (at most {} s)",
        elapsed_text(started),
        DRAIN_TIMEOUT.as_secs()
    ));
    let _ = customers.await;

    // The drain: until every requested order has ended and its customer
    // was told, within a bound.
    let drain_deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        observer.read().await?;
        let progress = observer.progress();
        if progress.requested > 0
            && progress.settled == progress.placed
            && progress.placed >= progress.requested
            && !invariants::restock_pending(observer.facts())
        {
            break;
        }
        if Instant::now() >= drain_deadline {
            finish_line("the drain timed out; checking what is there");
            break;
        }
        tokio::time::sleep(PROGRESS_INTERVAL).await;
    }
    // A last look, after the relays have had a moment for late duplicates.
    tokio::time::sleep(Duration::from_millis(500)).await;
    observer.read().await?;
    finish_line(&progress_line(started, &observer, &counts, &provider));
    let dead_letters = observer.dead_letters().await?;
    let outcomes = invariants::check(observer.facts(), &dead_letters);
    println!(
        "customers: {} ordered, {} accepted, {} asked again, {} walked away from a full café, {} never answered",
        counts.ordered.load(Ordering::Relaxed),
        counts.accepted.load(Ordering::Relaxed),
        counts.asked_again.load(Ordering::Relaxed),
        counts.walked_away.load(Ordering::Relaxed),
        counts.unanswered.load(Ordering::Relaxed),
    );
    println!(
        "report, checked from {} facts in Cairn:",
        observer.facts().len()
    );
    let lines = report_lines(&outcomes);
    for line in &lines {
        println!("{line}");
    }
    Ok(outcomes.iter().all(|outcome| outcome.passed))
}

/// Does what is due in `pending`.
fn run_pending(
    pending: &mut Vec<(Duration, Pending)>,
    now: Duration,
    children: &mut Children,
    provider: &CardProvider,
    started: Instant,
    finish_line: &impl Fn(&str),
) -> Result<(), DemoError> {
    let mut index = 0;
    while index < pending.len() {
        if pending[index].0 <= now {
            let (_, action) = pending.remove(index);
            let what = apply(action, children, provider)?;
            finish_line(&format!("{} {what}", elapsed_text(started)));
        } else {
            index += 1;
        }
    }
    Ok(())
}

fn apply(
    action: Pending,
    children: &mut Children,
    provider: &CardProvider,
) -> Result<String, DemoError> {
    Ok(match action {
        Pending::RestartService(service) => {
            let pid = children.restart_service(service)?;
            format!("restarted {service} (pid {pid})")
        }
        Pending::RestartCairn => {
            let pid = children.start_cairn()?;
            format!("restarted Cairn (pid {pid})")
        }
        Pending::OutageOver => {
            provider.set_outage(false);
            "card provider back".to_owned()
        }
    })
}

fn progress_line(
    started: Instant,
    observer: &Observer,
    counts: &CustomerCounts,
    provider: &CardProvider,
) -> String {
    let progress = observer.progress();
    let provider_counts = provider.counts();
    format!(
        "{} ordered {} placed {} served {} refunded {} declined {} | card: {} charges, {} refused{}",
        elapsed_text(started),
        counts.ordered.load(Ordering::Relaxed),
        progress.placed,
        progress.served,
        progress.refunded,
        progress.declined,
        provider_counts.charges.load(Ordering::Relaxed),
        provider_counts.refused.load(Ordering::Relaxed),
        if provider.in_outage() { " (OUTAGE)" } else { "" },
    )
}
