//! [`EffectLog`]: what a service applied, one JSON line per effect in a
//! file, and the deduplication by idempotency key that makes each key's
//! effect happen once (the answer stored with it is answered again). The
//! test's oracle reads these files: they are the services' own records.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One applied effect (or one decision without effect, such as a decline).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// The idempotency key it was applied under.
    pub key: String,
    /// What: `reserve`, `release`, `charge`, `decline`, `refund`, `book`,
    /// `ignore` (a booking shipping never answers).
    pub kind: String,
    /// The order.
    pub order: String,
    /// The answer given (JSON), `null` for none.
    pub answer: serde_json::Value,
    /// When (µs since the Unix epoch).
    pub at_us: u64,
}

/// Errors of the effect log.
#[derive(Debug, thiserror::Error)]
pub enum EffectError {
    /// The file could not be read or written.
    #[error("effect log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line is not an effect.
    #[error("effect log {path}: bad line: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// A service's effects, in a file, deduplicated by key.
#[derive(Debug)]
pub struct EffectLog {
    path: PathBuf,
    state: Mutex<HashMap<String, Effect>>,
}

impl EffectLog {
    /// Opens (or creates) the log at `path`, reading what it holds.
    pub fn open(path: &Path) -> Result<EffectLog, EffectError> {
        let effects = read_effects(path)?;
        Ok(EffectLog {
            path: path.to_path_buf(),
            state: Mutex::new(
                effects
                    .into_iter()
                    .map(|effect| (effect.key.clone(), effect))
                    .collect(),
            ),
        })
    }

    /// The effect stored under `key`, or `apply()`'s (kind, order,
    /// answer), stored first: each key's effect happens once.
    pub fn once(
        &self,
        key: &str,
        apply: impl FnOnce(&HashMap<String, Effect>) -> (String, String, serde_json::Value),
    ) -> Result<Effect, EffectError> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(effect) = state.get(key) {
            return Ok(effect.clone());
        }
        let (kind, order, answer) = apply(&state);
        let effect = Effect {
            key: key.to_string(),
            kind,
            order,
            answer,
            at_us: unix_time_us(),
        };
        let io_error = |source| EffectError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io_error)?;
        let mut line = serde_json::to_vec(&effect).map_err(|source| EffectError::Parse {
            path: self.path.clone(),
            source,
        })?;
        line.push(b'\n');
        file.write_all(&line).map_err(io_error)?;
        file.sync_data().map_err(io_error)?;
        state.insert(key.to_string(), effect.clone());
        Ok(effect)
    }
}

impl EffectLog {
    /// Records what is not an effect (a request a service chose to leave
    /// unanswered) under `note_key`, once; the key's effect stays free.
    pub fn note(&self, note_key: &str, kind: &str, order: &str) -> Result<(), EffectError> {
        self.once(note_key, |_| {
            (kind.to_string(), order.to_string(), serde_json::Value::Null)
        })?;
        Ok(())
    }
}

/// Every effect in the log at `path` (none if there is no file).
pub fn read_effects(path: &Path) -> Result<Vec<Effect>, EffectError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(EffectError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).map_err(|source| EffectError::Parse {
                path: path.to_path_buf(),
                source,
            })
        })
        .collect()
}

fn unix_time_us() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX)
}
