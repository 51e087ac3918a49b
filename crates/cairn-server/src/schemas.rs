//! The schema registry of a server (`docs/api-v1.md`, "Schemas and
//! upcasting"): the registered versions of every type, compiled once and
//! kept in memory, registration, the validation of written facts, and the
//! upcast view of a stored fact read `as_version`.
//!
//! Schemas are facts: a registration is stored as a `Cairn.Schema` fact
//! (`{"type", "version", "registration"}`) that names the registry's
//! anchor (`Cairn.SchemaRegistry`, the same fact in every store) in the
//! role `registry` and the previous version in the role `previous`. So
//! they are content-addressed, immutable, on both backends alike, and a
//! replication link carries them. The memory view is rebuilt from the
//! anchor's successors: at start, after every registration through this
//! server, when a written fact names a version this server has not seen,
//! and every [`REFRESH_INTERVAL`] (what other servers of a shared
//! database, or a replication link, stored). For each type and version the
//! first such fact in the store's log holds; a later one is ignored.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cairn_api::schemas::{
    fact_version, upcast_fields, BreakingChange, SchemaList, SchemaRegistration,
    SchemaVersionSummary, SchemaVersionView, UpcastMarker, Violation, SCHEMA_FACT_TYPE,
    VERSION_FIELD,
};
use cairn_api::ErrorCode;
use cairn_fact::{CanonicalFact, Hash};
use cairn_schema::validator::CompiledSchema;
use cairn_store::{ReadError, Store, SuccessorsQuery};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;

/// How often a server reads the schemas other servers (or links) stored.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// The type of the registry's anchor fact.
const ANCHOR_TYPE: &str = "Cairn.SchemaRegistry";

/// Schema facts read per refresh page.
const REFRESH_PAGE_FACTS: usize = 1_000;

/// The fields of a `Cairn.Schema` fact.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFactFields {
    #[serde(rename = "type")]
    type_name: String,
    version: u32,
    registration: SchemaRegistration,
}

/// One registered version.
pub struct RegisteredVersion {
    /// The `Cairn.Schema` fact that registered it.
    pub hash: Hash,
    /// The registration as stored.
    pub registration: SchemaRegistration,
    compiled: CompiledSchema,
}

#[derive(Default)]
struct Registry {
    types: HashMap<String, BTreeMap<u32, Arc<RegisteredVersion>>>,
    /// The anchor's successors up to this `seq` are read.
    after_seq: u64,
}

/// A stored fact written at an older version, as a reader of a newer
/// one sees it (`as_version`).
pub struct UpcastView {
    /// The fact with its fields upcast: answered as `fact`.
    pub fact: Box<RawValue>,
    /// From which version to which.
    pub marker: UpcastMarker,
}

/// The schema registry; shared by the routes and the refresh task.
pub struct Schemas {
    registry: RwLock<Registry>,
    /// One registration at a time on this server (another server's is
    /// told apart after the write: the first fact in the log holds).
    registering: tokio::sync::Mutex<()>,
    /// One refresh at a time.
    refreshing: tokio::sync::Mutex<()>,
    require_schemas: bool,
    anchor: CanonicalFact,
}

impl Schemas {
    /// An empty registry; [`Schemas::refresh`] reads what is stored.
    /// `require_schemas` refuses writes of types without a schema.
    pub fn new(require_schemas: bool) -> Arc<Schemas> {
        let anchor = CanonicalFact::from_json(
            format!(r#"{{"type":"{ANCHOR_TYPE}","fields":{{}},"predecessors":{{}}}}"#).as_bytes(),
            usize::MAX,
        )
        .expect("the anchor is a valid fact");
        Arc::new(Schemas {
            registry: RwLock::new(Registry::default()),
            registering: tokio::sync::Mutex::new(()),
            refreshing: tokio::sync::Mutex::new(()),
            require_schemas,
            anchor,
        })
    }

    /// Reads the schema facts stored since the last refresh.
    pub async fn refresh<S: Store>(&self, store: &S) -> Result<(), ReadError> {
        let _one_at_a_time = self.refreshing.lock().await;
        loop {
            let after_seq = self.read().after_seq;
            let page = store
                .successors(&SuccessorsQuery {
                    predecessor: self.anchor.hash,
                    type_name: SCHEMA_FACT_TYPE.to_string(),
                    role: Some("registry".to_string()),
                    without_types: Vec::new(),
                    after_seq,
                    limit: REFRESH_PAGE_FACTS,
                })
                .await?;
            let mut registry = self.registry.write().unwrap_or_else(|e| e.into_inner());
            for fact in &page.facts {
                match parse_schema_fact(&fact.canonical) {
                    Ok((fields, compiled)) => {
                        let versions = registry.types.entry(fields.type_name).or_default();
                        versions.entry(fields.version).or_insert_with(|| {
                            Arc::new(RegisteredVersion {
                                hash: fact.hash,
                                registration: fields.registration,
                                compiled,
                            })
                        });
                    }
                    // A schema this server cannot compile (from a newer
                    // server, say) is left out rather than enforced wrongly.
                    Err(error) => tracing::warn!(
                        hash = %fact.hash,
                        "a stored schema is not usable here and is ignored: {error}"
                    ),
                }
            }
            registry.after_seq = registry.after_seq.max(page.next_seq);
            if page.facts.len() < REFRESH_PAGE_FACTS {
                return Ok(());
            }
        }
    }

    /// Refreshes every [`REFRESH_INTERVAL`] until `shutdown`.
    pub fn spawn_refresh<S: Store>(
        self: &Arc<Self>,
        store: Arc<S>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let schemas = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                if let Err(error) = schemas.refresh(store.as_ref()).await {
                    tracing::debug!("cannot read the schemas now: {error}");
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(REFRESH_INTERVAL) => {}
                }
            }
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The versions of `type_name`, oldest first (empty: no schema).
    fn versions_of(&self, type_name: &str) -> Vec<(u32, Arc<RegisteredVersion>)> {
        self.read()
            .types
            .get(type_name)
            .map(|versions| {
                versions
                    .iter()
                    .map(|(version, registered)| (*version, Arc::clone(registered)))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn version_of(&self, type_name: &str, version: u32) -> Option<Arc<RegisteredVersion>> {
        self.read().types.get(type_name)?.get(&version).cloned()
    }

    /// `GET /v1/schemas/{type}`: `None` if the type has no schema.
    pub fn list(&self, type_name: &str) -> Option<SchemaList> {
        let versions = self.versions_of(type_name);
        (!versions.is_empty()).then(|| summary(type_name, &versions))
    }

    /// Every type with a schema that `visible` lets through, sorted.
    pub fn list_all(&self, visible: impl Fn(&str) -> bool) -> Vec<SchemaList> {
        let mut names: Vec<String> = self
            .read()
            .types
            .keys()
            .filter(|name| visible(name))
            .cloned()
            .collect();
        names.sort();
        names.iter().filter_map(|name| self.list(name)).collect()
    }

    /// `GET /v1/schemas/{type}/{version}`.
    pub fn get(&self, type_name: &str, version: u32) -> Option<SchemaVersionView> {
        self.version_of(type_name, version)
            .map(|registered| view(type_name, version, &registered, None))
    }

    /// Registers `registration` as `version` of `type_name` (see the
    /// contract): idempotent for the same registration; `schema_conflict`
    /// for another one at a registered version or a version that does not
    /// follow the latest; `invalid_schema`; `incompatible_schema`.
    pub async fn register<S: Store>(
        &self,
        store: &S,
        type_name: &str,
        version: u32,
        registration: SchemaRegistration,
        fact_bytes_max: usize,
    ) -> Result<SchemaVersionView, ApiError> {
        let _one_at_a_time = self.registering.lock().await;
        self.refresh(store).await?;
        CompiledSchema::compile(&registration)
            .map_err(|error| ApiError::new(ErrorCode::InvalidSchema, error.0))?;
        let versions = self.versions_of(type_name);
        let latest = versions.last().map_or(0, |(latest, _)| *latest);
        if version > latest + 1 {
            return Err(ApiError::new(
                ErrorCode::SchemaConflict,
                format!(
                    "the next version of {type_name} is {}, not {version}: versions are \
                     registered in order",
                    latest + 1
                ),
            ));
        }
        let previous = versions
            .iter()
            .find(|(number, _)| *number + 1 == version)
            .map(|(_, previous)| previous.hash);
        let fields = SchemaFactFields {
            type_name: type_name.to_string(),
            version,
            registration,
        };
        let fact = schema_fact(&self.anchor, &fields, previous, fact_bytes_max)?;
        if let Some((_, registered)) = versions.iter().find(|(number, _)| *number == version) {
            // The same registration again is the same fact.
            if registered.hash == fact.hash {
                return Ok(view(type_name, version, registered, Some(false)));
            }
            return Err(ApiError::new(
                ErrorCode::SchemaConflict,
                format!(
                    "{type_name} version {version} is registered with another schema; a \
                     version never changes: register version {} instead",
                    latest + 1
                ),
            ));
        }
        let registration = &fields.registration;
        if version == 1 && !registration.upcast.is_empty() {
            return Err(ApiError::new(
                ErrorCode::InvalidSchema,
                "version 1 has no earlier version to upcast from: leave upcast out",
            ));
        }
        let earlier: Vec<(u32, &SchemaRegistration)> = versions
            .iter()
            .map(|(number, registered)| (*number, &registered.registration))
            .collect();
        let breaking = cairn_schema::compatibility::check(version, registration, &earlier);
        if !breaking.is_empty() {
            return Err(incompatible(type_name, version, registration, &breaking));
        }
        let hash = fact.hash;
        let outcomes = store.put_facts(vec![self.anchor.clone(), fact]).await?;
        let inserted = outcomes.last().is_some_and(|outcome| outcome.inserted);
        self.refresh(store).await?;
        match self.version_of(type_name, version) {
            Some(registered) if registered.hash == hash => {
                Ok(view(type_name, version, &registered, Some(inserted)))
            }
            _ => Err(ApiError::new(
                ErrorCode::SchemaConflict,
                format!(
                    "another server registered {type_name} version {version} at the same \
                     moment, with another schema; read it and register the next version"
                ),
            )),
        }
    }

    /// Checks a batch before it is written: every fact of a type with
    /// schemas against the version it names (`schema_violation`), and,
    /// with `--require-schemas`, that every type has one
    /// (`schema_required`). The first fact that fails refuses the batch.
    pub async fn validate_batch<S: Store>(
        &self,
        store: &S,
        facts: &[CanonicalFact],
    ) -> Result<(), ApiError> {
        let mut refreshed = false;
        for (index, fact) in facts.iter().enumerate() {
            let type_name = fact.fact.type_name.as_str();
            let names_version = fact
                .fact
                .fields
                .iter()
                .any(|(name, _)| name == VERSION_FIELD);
            let version = match version_field(&fact.fact) {
                Ok(version) => version,
                Err(message) => {
                    if self.versions_of(type_name).is_empty() && !self.require_schemas {
                        continue;
                    }
                    return Err(violation(
                        index,
                        type_name,
                        None,
                        vec![Violation {
                            pointer: format!("/fields/{VERSION_FIELD}"),
                            rule: "version".into(),
                            message,
                        }],
                    ));
                }
            };
            let mut registered = self.version_of(type_name, version);
            // A fact that names its version, or a server that requires
            // schemas, reads what another server may have registered a
            // moment ago; other facts of types without a schema do not
            // pay a read each (the registry refreshes every second).
            if registered.is_none() && !refreshed && (names_version || self.require_schemas) {
                refreshed = true;
                self.refresh(store).await?;
                registered = self.version_of(type_name, version);
            }
            let Some(registered) = registered else {
                let versions = self.versions_of(type_name);
                match versions.last() {
                    None if !self.require_schemas => continue,
                    None => {
                        return Err(ApiError::new(
                            ErrorCode::SchemaRequired,
                            format!(
                                "facts[{index}]: {type_name} has no schema, and this server \
                                 requires one for every type (--require-schemas); register it \
                                 with PUT /v1/schemas/{type_name}/1; nothing was stored"
                            ),
                        )
                        .with_detail("index", serde_json::json!(index)))
                    }
                    Some((latest, _)) => {
                        return Err(violation(
                            index,
                            type_name,
                            Some(version),
                            vec![Violation {
                                pointer: format!("/fields/{VERSION_FIELD}"),
                                rule: "version".into(),
                                message: format!(
                                    "{type_name} has no schema version {version} (versions 1 \
                                     to {latest})"
                                ),
                            }],
                        ))
                    }
                }
            };
            let predecessor_types = if registered.compiled.needs_predecessor_types() {
                predecessor_types(store, facts, index).await?
            } else {
                HashMap::new()
            };
            let violations = registered
                .compiled
                .validate(&fact.fact, &|hash| predecessor_types.get(hash).cloned());
            if !violations.is_empty() {
                return Err(violation(index, type_name, Some(version), violations));
            }
        }
        Ok(())
    }

    /// A stored fact (its canonical bytes) as a reader of `as_version` of
    /// its type sees it: `None` if it is shown as stored (its type has no
    /// such version, or it was written at that version or a newer one).
    pub fn read_as(
        &self,
        canonical: &[u8],
        as_version: u32,
    ) -> Result<Option<UpcastView>, ApiError> {
        let Some(type_name) = cairn_fact::canonical_type(canonical) else {
            return Ok(None);
        };
        let versions = self.versions_of(type_name);
        if !versions.iter().any(|(number, _)| *number == as_version) {
            return Ok(None);
        }
        let mut fact: serde_json::Value = serde_json::from_slice(canonical).map_err(|error| {
            ApiError::new(
                ErrorCode::CorruptData,
                format!("a stored fact is not JSON: {error}"),
            )
        })?;
        let Some(fields) = fact
            .get_mut("fields")
            .and_then(|fields| fields.as_object_mut())
        else {
            return Ok(None);
        };
        let Ok(from) = fact_version(fields) else {
            return Ok(None);
        };
        if from >= as_version {
            return Ok(None);
        }
        let upcasts = |version: u32| {
            versions
                .iter()
                .find(|(number, _)| *number == version)
                .map_or(&[][..], |(_, registered)| {
                    registered.registration.upcast.as_slice()
                })
        };
        upcast_fields(fields, from, as_version, upcasts).map_err(|error| {
            ApiError::new(
                ErrorCode::UpcastFailed,
                format!("this {type_name} fact cannot be read as version {as_version}: {error}"),
            )
        })?;
        let view = serde_json::value::to_raw_value(&fact).map_err(|error| {
            ApiError::new(ErrorCode::Internal, format!("cannot write a view: {error}"))
        })?;
        Ok(Some(UpcastView {
            fact: view,
            marker: UpcastMarker {
                from,
                to: as_version,
            },
        }))
    }

    /// Checks that `type_name` has a schema `version` (a reader asking
    /// for one of a single type), reading what is stored if this server
    /// has not seen it yet: `unknown_schema` otherwise.
    pub async fn require_version<S: Store>(
        &self,
        store: &S,
        type_name: &str,
        version: u32,
    ) -> Result<(), ApiError> {
        if self.version_of(type_name, version).is_none() {
            self.refresh(store).await?;
        }
        match self.version_of(type_name, version) {
            Some(_) => Ok(()),
            None => Err(ApiError::new(
                ErrorCode::UnknownSchema,
                format!("{type_name} has no schema version {version}"),
            )),
        }
    }
}

/// The version a fact names in `cairn_version` (1 if it names none).
fn version_field(fact: &cairn_fact::Fact) -> Result<u32, String> {
    let Some((_, value)) = fact.fields.iter().find(|(name, _)| name == VERSION_FIELD) else {
        return Ok(1);
    };
    let max = cairn_api::limits::SCHEMA_VERSION_MAX;
    match value {
        cairn_fact::Value::Number(number)
            if number.fract() == 0.0 && *number >= 1.0 && *number <= f64::from(max) =>
        {
            Ok(*number as u32)
        }
        _ => Err(format!(
            "{VERSION_FIELD} must be an integer from 1 to {max}"
        )),
    }
}

/// The types of the predecessors of `facts[index]`: from earlier facts of
/// the batch, else from the store (a predecessor stored nowhere is left
/// out: the store refuses the batch for it anyway).
async fn predecessor_types<S: Store>(
    store: &S,
    facts: &[CanonicalFact],
    index: usize,
) -> Result<HashMap<Hash, String>, ApiError> {
    let mut types = HashMap::new();
    for (_, hash) in facts[index].fact.all_predecessors() {
        if types.contains_key(hash) {
            continue;
        }
        let in_batch = facts[..index]
            .iter()
            .find(|earlier| earlier.hash == *hash)
            .map(|earlier| earlier.fact.type_name.clone());
        let type_name = match in_batch {
            Some(type_name) => Some(type_name),
            None => store.get_fact(hash).await?.and_then(|stored| {
                cairn_fact::canonical_type(&stored.canonical).map(str::to_string)
            }),
        };
        if let Some(type_name) = type_name {
            types.insert(*hash, type_name);
        }
    }
    Ok(types)
}

fn violation(
    index: usize,
    type_name: &str,
    version: Option<u32>,
    mut violations: Vec<Violation>,
) -> ApiError {
    violations.truncate(cairn_api::limits::SCHEMA_VIOLATIONS_MAX);
    let first = &violations[0];
    let at_version = version.map_or(String::new(), |version| format!(" version {version}"));
    ApiError::new(
        ErrorCode::SchemaViolation,
        format!(
            "facts[{index}] does not conform to the schema of {type_name}{at_version}: {} at {} \
             ({}){}; nothing was stored",
            first.message,
            first.pointer,
            first.rule,
            match violations.len() {
                1 => String::new(),
                n => format!(", and {} more", n - 1),
            }
        ),
    )
    .with_detail("index", serde_json::json!(index))
    .with_detail(
        "violations",
        serde_json::to_value(&violations).unwrap_or_default(),
    )
}

fn incompatible(
    type_name: &str,
    version: u32,
    registration: &SchemaRegistration,
    breaking: &[BreakingChange],
) -> ApiError {
    let first = &breaking[0];
    ApiError::new(
        ErrorCode::IncompatibleSchema,
        format!(
            "{type_name} version {version} is not {} compatible with version {}: {} ({} at {}){}; \
             nothing was registered",
            registration.compatibility.as_str(),
            first.version,
            first.message,
            first.rule,
            first.path,
            match breaking.len() {
                1 => String::new(),
                n => format!(", and {} more breaking changes", n - 1),
            }
        ),
    )
    .with_detail(
        "breaking",
        serde_json::to_value(breaking).unwrap_or_default(),
    )
}

/// Parses and compiles a stored `Cairn.Schema` fact.
fn parse_schema_fact(canonical: &[u8]) -> Result<(SchemaFactFields, CompiledSchema), String> {
    #[derive(Deserialize)]
    struct SchemaFact {
        fields: SchemaFactFields,
    }
    let fact: SchemaFact = serde_json::from_slice(canonical).map_err(|error| error.to_string())?;
    let compiled = CompiledSchema::compile(&fact.fields.registration).map_err(|error| error.0)?;
    Ok((fact.fields, compiled))
}

/// The `Cairn.Schema` fact of a registration.
fn schema_fact(
    anchor: &CanonicalFact,
    fields: &SchemaFactFields,
    previous: Option<Hash>,
    fact_bytes_max: usize,
) -> Result<CanonicalFact, ApiError> {
    let mut predecessors = serde_json::json!({"registry": anchor.hash.to_hex()});
    if let Some(previous) = previous {
        predecessors["previous"] = serde_json::Value::String(previous.to_hex());
    }
    let fact = serde_json::json!({
        "type": SCHEMA_FACT_TYPE,
        "fields": fields,
        "predecessors": predecessors,
    });
    let bytes = serde_json::to_vec(&fact)
        .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?;
    CanonicalFact::from_json(&bytes, fact_bytes_max).map_err(|error| {
        ApiError::new(
            ErrorCode::InvalidSchema,
            format!("the registration cannot be stored as a fact: {error}"),
        )
    })
}

fn summary(type_name: &str, versions: &[(u32, Arc<RegisteredVersion>)]) -> SchemaList {
    SchemaList {
        type_name: type_name.to_string(),
        versions: versions
            .iter()
            .map(|(version, registered)| SchemaVersionSummary {
                version: *version,
                compatibility: registered.registration.compatibility,
                hash: registered.hash,
            })
            .collect(),
    }
}

fn view(
    type_name: &str,
    version: u32,
    registered: &RegisteredVersion,
    registered_now: Option<bool>,
) -> SchemaVersionView {
    SchemaVersionView {
        type_name: type_name.to_string(),
        version,
        hash: registered.hash,
        registration: registered.registration.clone(),
        registered: registered_now,
    }
}
