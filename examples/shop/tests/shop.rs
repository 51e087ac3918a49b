//! End to end: a real Cairn server in-process, and the real `orders` and
//! `billing` binaries as separate processes, each with its own SQLite file.
//!
//! Orders are placed for a normal customer, for `flaky` (the gateway fails
//! twice) and for `broke` (always declined); `billing` is killed with
//! SIGKILL in the middle and started again. Checked: each payable order is
//! paid exactly once (one `Shop.PaymentSucceeded` per order in Cairn's log,
//! applied once by `orders`, one payment notice), the flaky order went
//! through on its third delivery, the broke order is a dead letter of the
//! `billing` subscription with the decline text and is marked failed, a
//! repeated `POST /orders` with the same `Idempotency-Key` places one
//! order, and both services stop cleanly on SIGTERM.
//!
//! Cairn runs with `--auth` (`NodeOptions::auth`): an admin is created
//! offline before it starts, as `cairn tokens create --data DIR --admin`
//! does, and each service gets its own least-privilege identity over HTTP
//! with the admin's token, as `cairn tokens create` does, passed to its
//! process as `CAIRN_TOKEN`. Billing's token must not write an order fact.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use cairn_client::{
    AccessToken, Client, ClientOptions, Pattern, Permissions, ServiceDeclaration,
    TokenCreateRequest, TypedFact,
};
use cairn_example_shop::facts::{OrderPlaced, PaymentFailed, PaymentSucceeded};
use cairn_example_shop::limits::{
    BILLING_ATTEMPTS_MAX, BILLING_SUBSCRIPTION, ORDERS_FAILED_SUBSCRIPTION,
    ORDERS_SUCCEEDED_SUBSCRIPTION, SUBSCRIBER_WAIT_MS,
};
use cairn_store::{EmbeddedOptions, EmbeddedStore, Store};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Longest time the test waits for any one thing to happen.
const WAIT_MAX: Duration = Duration::from_secs(60);
/// Pause between two looks while waiting.
const WAIT_STEP: Duration = Duration::from_millis(100);
/// Longest time a service may take to exit after SIGTERM or SIGKILL.
const EXIT_WAIT_MAX: Duration = Duration::from_secs(30);
/// Pages of Cairn's log read at most.
const LOG_PAGES_MAX: usize = 100;

/// A Cairn server in this process on a free loopback port, started with
/// `--auth`; stopped when dropped.
struct Cairn {
    url: String,
    /// The admin's token (the test reads the log and the dead letters
    /// with it, and creates the services' identities).
    admin_token: String,
    shutdown: CancellationToken,
    _data: tempfile::TempDir,
}

impl Cairn {
    async fn start() -> anyhow::Result<Cairn> {
        let data = tempfile::tempdir()?;
        let store_dir = data.path().join("store");
        let admin_token = create_admin_offline(store_dir.clone()).await?;
        let mut options = cairn_server::NodeOptions::embedded(store_dir);
        options.blob_bytes_max = 1024 * 1024;
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
        })
    }

    /// Creates identity `name` with `permissions` over HTTP with the
    /// admin's token (`POST /v1/tokens`, what `cairn tokens create` sends);
    /// its token.
    async fn create_identity(
        &self,
        name: &str,
        permissions: Permissions,
    ) -> anyhow::Result<String> {
        let admin = Client::remote(ClientOptions {
            access_token: Some(AccessToken::new(self.admin_token.clone())),
            ..ClientOptions::new([self.url.as_str()])
        })?;
        let request = TokenCreateRequest {
            name: name.to_owned(),
            permissions,
            expires_in_s: None,
            rate_per_s: None,
            write_rate_per_s: None,
        };
        Ok(admin.create_token(&request).await?.token)
    }
}

/// Creates the admin in the store in `dir` before its server starts, as
/// `cairn tokens create --data DIR --name admin --admin` does; its token.
async fn create_admin_offline(dir: PathBuf) -> anyhow::Result<String> {
    let store =
        tokio::task::spawn_blocking(move || EmbeddedStore::open(&dir, EmbeddedOptions::default()))
            .await??;
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
    let created = cairn_server::auth::identities::create_identity(&store, &request)
        .await
        .map_err(|error| anyhow::anyhow!("{}: {}", error.code.as_str(), error.message))?;
    tokio::task::spawn_blocking(move || store.close()).await?;
    Ok(created.token)
}

/// Fact-type or subscription-name patterns.
fn patterns(texts: &[&str]) -> anyhow::Result<Vec<Pattern>> {
    texts
        .iter()
        .map(|text| Pattern::parse(text).map_err(|error| anyhow::anyhow!("{text}: {error}")))
        .collect()
}

/// `orders`: writes the order facts it owns, reads and consumes the
/// payment facts through its two subscriptions.
fn orders_permissions() -> anyhow::Result<Permissions> {
    Ok(Permissions {
        write: patterns(&[OrderPlaced::TYPE_NAME])?,
        read: patterns(&[PaymentSucceeded::TYPE_NAME, PaymentFailed::TYPE_NAME])?,
        subscribe: patterns(&[ORDERS_SUCCEEDED_SUBSCRIPTION, ORDERS_FAILED_SUBSCRIPTION])?,
        ..Permissions::default()
    })
}

/// `billing`: writes the payment facts, reads and consumes the orders
/// through its own subscription.
fn billing_permissions() -> anyhow::Result<Permissions> {
    Ok(Permissions {
        write: patterns(&[PaymentSucceeded::TYPE_NAME, PaymentFailed::TYPE_NAME])?,
        read: patterns(&[OrderPlaced::TYPE_NAME])?,
        subscribe: patterns(&[BILLING_SUBSCRIPTION])?,
        ..Permissions::default()
    })
}

impl Drop for Cairn {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// One of the example's binaries running as a child process, its stderr
/// going to a log file; killed if still running when dropped.
struct Service {
    binary: &'static str,
    arguments: Vec<String>,
    /// The service's own access token, passed as `CAIRN_TOKEN`.
    access_token: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Service {
    fn new(
        binary: &'static str,
        arguments: Vec<String>,
        access_token: String,
        log: PathBuf,
    ) -> Service {
        Service {
            binary,
            arguments,
            access_token,
            log,
            child: None,
        }
    }

    fn start(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "{} is running already", self.binary);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(self.binary)
            .args(&self.arguments)
            .env("CAIRN_TOKEN", &self.access_token)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary))?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills the process with SIGKILL, as a crash would.
    async fn kill_hard(&mut self) -> anyhow::Result<()> {
        let mut child = self.child.take().context("not running")?;
        child.kill()?;
        wait_for_exit(&mut child).await?;
        Ok(())
    }

    /// Sends SIGTERM and waits for the process to exit.
    async fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("not running")?;
        let pid = libc::pid_t::try_from(child.id())?;
        // SAFETY: `kill` only sends a signal to our own child, still
        // unreaped (so its pid cannot have been reused).
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        anyhow::ensure!(sent == 0, "cannot send SIGTERM");
        wait_for_exit(&mut child).await
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn wait_for_exit(child: &mut Child) -> anyhow::Result<ExitStatus> {
    let deadline = tokio::time::Instant::now() + EXIT_WAIT_MAX;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if tokio::time::Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            anyhow::bail!("the process did not exit in time");
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
}

/// A loopback address that was free a moment ago.
fn free_address() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
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
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out waiting until {what}");
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
}

/// Talks HTTP to the services and to Cairn (with the admin's token).
struct Shop {
    http: reqwest::Client,
    orders_url: String,
    cairn_url: String,
    admin_token: String,
    billing_token: String,
}

impl Shop {
    /// Registers both services' declarations (`src/*/cairn-service.json`)
    /// and checks the flow map: every observed write is by the owner, every
    /// consumed type has one, and both services were seen in their flows.
    async fn check_boundaries(&self) -> anyhow::Result<()> {
        let admin = Client::remote(ClientOptions {
            access_token: Some(AccessToken::new(self.admin_token.clone())),
            ..ClientOptions::new([self.cairn_url.as_str()])
        })?;
        for file in [
            concat!(env!("CARGO_MANIFEST_DIR"), "/src/orders/cairn-service.json"),
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/src/billing/cairn-service.json"
            ),
        ] {
            let declaration: ServiceDeclaration =
                serde_json::from_slice(&std::fs::read(file)?).context(file)?;
            // Every type it names was written or declared by now.
            admin.register_service(&declaration, false).await?;
        }
        let map = admin.boundaries(None).await?;
        assert!(
            map.violations.is_empty(),
            "violations: {:?}",
            map.violations
        );
        for (identity, kind, type_name) in [
            ("orders", "writes", OrderPlaced::TYPE_NAME),
            ("billing", "consumes", OrderPlaced::TYPE_NAME),
            ("billing", "writes", PaymentSucceeded::TYPE_NAME),
            ("orders", "consumes", PaymentSucceeded::TYPE_NAME),
        ] {
            let flows = serde_json::to_value(&map.flows)?;
            assert!(
                flows
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|flow| flow["identity"] == identity
                        && flow["kind"] == kind
                        && flow["type"] == type_name),
                "{identity} {kind} {type_name} was observed: {flows}"
            );
        }
        Ok(())
    }

    /// `POST /orders`; answers the status, the `Idempotent-Replayed`
    /// header and the body.
    async fn place(
        &self,
        order: &Value,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<(u16, bool, Value)> {
        let mut request = self
            .http
            .post(format!("{}/orders", self.orders_url))
            .json(order);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let replayed = response.headers().contains_key("idempotent-replayed");
        Ok((status, replayed, response.json().await?))
    }

    /// `GET url` of a service: `None` on 404.
    async fn get_json(&self, url: &str) -> anyhow::Result<Option<Value>> {
        Self::json_of(self.http.get(url).send().await?).await
    }

    /// `GET path` of Cairn with the admin's token: `None` on 404.
    async fn cairn_json(&self, path: &str) -> anyhow::Result<Option<Value>> {
        let request = self
            .http
            .get(format!("{}{path}", self.cairn_url))
            .bearer_auth(&self.admin_token);
        Self::json_of(request.send().await?).await
    }

    async fn json_of(response: reqwest::Response) -> anyhow::Result<Option<Value>> {
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(response.error_for_status()?.json().await?))
    }

    async fn order(&self, id: &str) -> anyhow::Result<Value> {
        self.get_json(&format!("{}/orders/{id}", self.orders_url))
            .await?
            .with_context(|| format!("order {id} is unknown"))
    }

    /// Waits until the order has `status`, its payment applied and, for a
    /// paid order, billing's notice recorded.
    async fn settled(&self, id: &str, status: &str) -> anyhow::Result<Value> {
        eventually(&format!("order {id} is {status}"), || async {
            let order = self.order(id).await?;
            let notified = status != "paid" || order["payment_notices"] == 1;
            Ok((order["status"] == status && notified).then_some(order))
        })
        .await
    }

    /// Every fact in Cairn's log.
    async fn log(&self) -> anyhow::Result<Vec<Value>> {
        let mut facts = Vec::new();
        let mut after_seq = 0;
        for _ in 0..LOG_PAGES_MAX {
            let page = self
                .cairn_json(&format!("/v1/log?after={after_seq}&limit=10000"))
                .await?
                .context("no log")?;
            let page_facts = page["facts"].as_array().context("no facts")?;
            if page_facts.is_empty() {
                return Ok(facts);
            }
            facts.extend(page_facts.iter().cloned());
            after_seq = page["next"].as_u64().context("no next")?;
        }
        anyhow::bail!("the log has more than {LOG_PAGES_MAX} pages")
    }

    /// Tries to write a `Shop.OrderPlaced` fact with billing's token;
    /// the status and the error code.
    async fn billing_writes_an_order(&self) -> anyhow::Result<(u16, Value)> {
        let fact = json!({"type": OrderPlaced::TYPE_NAME, "predecessors": {},
            "fields": {"order_id": "forged", "customer": "mallory", "items": [],
                "total_cents": 1, "placed_at_ms": 0}});
        let response = self
            .http
            .post(format!("{}/v1/facts", self.cairn_url))
            .bearer_auth(&self.billing_token)
            .json(&json!({ "facts": [fact] }))
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await?))
    }

    async fn dead_letters(&self) -> anyhow::Result<Vec<Value>> {
        let page = self
            .cairn_json("/v1/subscriptions/billing/dead")
            .await?
            .context("no billing subscription")?;
        Ok(page["messages"].as_array().context("no messages")?.clone())
    }
}

fn order_body(customer: &str, total_cents: i64) -> Value {
    json!({"customer": customer, "items": [{"sku": "tea", "quantity": 2}], "total_cents": total_cents})
}

fn id_of(order: &Value) -> anyhow::Result<String> {
    Ok(order["id"].as_str().context("order without id")?.to_owned())
}

/// The whole story; the services' logs are printed by the caller if it
/// fails.
async fn scenario(shop: &Shop, billing: &mut Service) -> anyhow::Result<()> {
    eventually("orders answers", || async {
        Ok(shop
            .get_json(&format!("{}/orders", shop.orders_url))
            .await
            .ok()
            .flatten())
    })
    .await?;
    eventually("billing created its subscription", || async {
        shop.cairn_json("/v1/subscriptions/billing").await
    })
    .await?;

    // One order, sent three times with one Idempotency-Key: one order.
    let ada = order_body("ada", 900);
    let (status, replayed, first) = shop.place(&ada, Some("ada-order-1")).await?;
    assert_eq!((status, replayed), (201, false), "{first}");
    let (status, replayed, again) = shop.place(&ada, Some("ada-order-1")).await?;
    assert_eq!((status, replayed), (201, true), "{again}");
    assert_eq!(again["id"], first["id"]);
    let (status, _, other) = shop
        .place(&order_body("ada", 1), Some("ada-order-1"))
        .await?;
    assert_eq!(status, 422, "a reused key with another body: {other}");
    let ada_id = id_of(&first)?;
    shop.settled(&ada_id, "paid").await?;

    // Billing crashes; orders keeps taking orders, which wait in Cairn.
    billing.kill_hard().await?;
    // A pull the dead billing left open ends within its long-poll; past
    // that, no delivery can go to the dead process.
    tokio::time::sleep(Duration::from_millis(SUBSCRIBER_WAIT_MS + 1_000)).await;
    let (status, _, flaky) = shop.place(&order_body("flaky", 1_250), None).await?;
    assert_eq!(status, 201, "{flaky}");
    let (status, _, broke) = shop.place(&order_body("broke", 99_900), None).await?;
    assert_eq!(status, 201, "{broke}");
    eventually("the orders are in Cairn", || async {
        let placed = shop
            .log()
            .await?
            .iter()
            .filter(|fact| fact["fact"]["type"] == "Shop.OrderPlaced")
            .count();
        Ok((placed == 3).then_some(()))
    })
    .await?;
    let (flaky_id, broke_id) = (id_of(&flaky)?, id_of(&broke)?);
    assert_eq!(shop.order(&flaky_id).await?["status"], "placed");
    billing.start()?;

    let flaky = shop.settled(&flaky_id, "paid").await?;
    let broke = shop.settled(&broke_id, "payment_failed").await?;
    let ada = shop.order(&ada_id).await?;
    let broke_fact = broke["order_fact"].as_str().context("no order fact")?;
    let dead = eventually("the broke order is a dead letter", || async {
        let dead = shop.dead_letters().await?;
        Ok((!dead.is_empty()).then_some(dead))
    })
    .await?;
    assert_eq!(dead.len(), 1, "only the broke order is dead: {dead:?}");
    assert_eq!(dead[0]["hash"], broke_fact);
    assert_eq!(dead[0]["attempts"], BILLING_ATTEMPTS_MAX);
    let last_error = dead[0]["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("card declined: insufficient funds"),
        "{last_error}"
    );
    assert!(
        broke["failure_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("insufficient funds"),
        "{broke}"
    );

    // Cairn's log: one order fact per order, one payment fact per payable
    // order (naming it), none for the broke one but one failure.
    let log = shop.log().await?;
    let mut successes: HashMap<String, Vec<&Value>> = HashMap::new();
    let mut failures: HashMap<String, usize> = HashMap::new();
    for entry in &log {
        let fact = &entry["fact"];
        let order = fact["predecessors"]["order"].as_str().unwrap_or_default();
        match fact["type"].as_str() {
            Some("Shop.PaymentSucceeded") => {
                successes.entry(order.to_owned()).or_default().push(entry)
            }
            Some("Shop.PaymentFailed") => *failures.entry(order.to_owned()).or_default() += 1,
            _ => {}
        }
    }
    for (order, attempt) in [(&ada, 1), (&flaky, 3)] {
        let order_fact = order["order_fact"].as_str().context("no order fact")?;
        let payments = successes.get(order_fact).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(payments.len(), 1, "one payment for {order}");
        assert_eq!(
            payments[0]["fact"]["fields"]["attempt"], attempt,
            "charged on delivery {attempt}"
        );
        assert_eq!(order["payment_facts_applied"], 1, "{order}");
        assert_eq!(order["payment_notices"], 1, "{order}");
        assert_eq!(order["payment_fact"], payments[0]["hash"], "{order}");
    }
    assert!(
        !successes.contains_key(broke_fact),
        "the broke order was charged"
    );
    assert_eq!(failures.get(broke_fact), Some(&1));
    assert_eq!(broke["payment_facts_applied"], 1, "{broke}");
    assert_eq!(successes.len(), 2);

    let ada_orders = shop
        .get_json(&format!("{}/orders?customer=ada", shop.orders_url))
        .await?
        .context("no list")?;
    assert_eq!(ada_orders["orders"].as_array().map(Vec::len), Some(1));

    // Least privilege: billing may write payments, not orders.
    let (status, refusal) = shop.billing_writes_an_order().await?;
    assert_eq!(status, 403, "{refusal}");
    assert_eq!(refusal["error"]["code"], "forbidden", "{refusal}");
    let placed = shop
        .log()
        .await?
        .iter()
        .filter(|fact| fact["fact"]["type"] == OrderPlaced::TYPE_NAME)
        .count();
    assert_eq!(placed, 3, "the refused order fact was stored");

    // The declared boundaries hold: what `cairn services register` and
    // `cairn boundaries check` do at deploy time, through the SDK.
    shop.check_boundaries().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_and_billing_settle_every_order_once() -> anyhow::Result<()> {
    let cairn = Cairn::start().await?;
    let orders_token = cairn
        .create_identity("orders", orders_permissions()?)
        .await?;
    let billing_token = cairn
        .create_identity("billing", billing_permissions()?)
        .await?;
    let work = tempfile::tempdir()?;
    let orders_address = free_address()?;
    let orders_url = format!("http://{orders_address}");
    let path = |name: &str| -> String { work.path().join(name).display().to_string() };
    let mut orders = Service::new(
        env!("CARGO_BIN_EXE_orders"),
        vec![
            "--listen".into(),
            orders_address.clone(),
            "--cairn".into(),
            cairn.url.clone(),
            "--data".into(),
            path("orders-data"),
        ],
        orders_token,
        work.path().join("orders.log"),
    );
    let mut billing = Service::new(
        env!("CARGO_BIN_EXE_billing"),
        vec![
            "--cairn".into(),
            cairn.url.clone(),
            "--orders".into(),
            orders_url.clone(),
            "--data".into(),
            path("billing-data"),
        ],
        billing_token.clone(),
        work.path().join("billing.log"),
    );
    orders.start()?;
    billing.start()?;
    let shop = Shop {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
        orders_url,
        cairn_url: cairn.url.clone(),
        admin_token: cairn.admin_token.clone(),
        billing_token,
    };
    let mut outcome = scenario(&shop, &mut billing).await;
    if outcome.is_ok() {
        outcome = stop_cleanly(&mut orders, &mut billing).await;
    }
    if outcome.is_err() {
        eprintln!("--- orders log ---\n{}", orders.log_text());
        eprintln!("--- billing log ---\n{}", billing.log_text());
    }
    outcome
}

async fn stop_cleanly(orders: &mut Service, billing: &mut Service) -> anyhow::Result<()> {
    let billing_status = billing.stop().await?;
    let orders_status = orders.stop().await?;
    assert!(
        billing_status.success(),
        "billing exited with {billing_status}"
    );
    assert!(
        orders_status.success(),
        "orders exited with {orders_status}"
    );
    assert!(billing.log_text().contains("billing stopped cleanly"));
    assert!(orders.log_text().contains("orders stopped cleanly"));
    Ok(())
}
